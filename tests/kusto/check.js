#!/usr/bin/env node
// Check KQL queries with Microsoft's own Kusto parser and semantic analyser (Kusto.Language, the
// C# library the Kusto services and editors use, compiled to JavaScript: npm
// @kusto/language-service-next, a devDependency in package.json).
//
// stdin: {"tables": {"<table>": [["<column>", "<kusto type>"], ...], ...},
//         "queries": [{"name": "<label>", "query": "<KQL>"}, ...]}
// stdout: [{"name", "diagnostics": [{"code", "severity", "message", "start", "length", "text"}],
//           "analyzer": [... the same, from the editor's analyzers (style hints, not errors)]}, ...]
//
// The tables form one database in the GlobalState the queries are analysed against, so an unknown
// table, an unknown column, a wrong type or a syntax error comes back as a diagnostic. Nothing is
// executed and nothing leaves this machine. tests/kusto/kql_check.py builds the input from the
// documented schemas and runs this script; `node tests/kusto/check.js < input.json` runs it alone.
"use strict";

const path = require("path");
const fs = require("fs");

function load() {
  const base = path.join(__dirname, "..", "..", "node_modules", "@kusto", "language-service-next");
  if (!fs.existsSync(path.join(base, "Kusto.Language.Bridge.min.js"))) {
    throw new Error(`@kusto/language-service-next missing at ${base}: run \`npm ci\` (or \`make env\`)`);
  }
  global.Bridge = require(path.join(base, "bridge.min.js"));
  require(path.join(base, "Kusto.Language.Bridge.min.js"));
  return global.Kusto.Language;
}

function list(items) {
  const out = [];
  const n = items ? items.Count : 0;
  for (let i = 0; i < n; i++) out.push(items.getItem(i));
  return out;
}

function describe(diagnostic, query) {
  return {
    code: diagnostic.Code,
    severity: diagnostic.Severity,
    message: diagnostic.Message,
    start: diagnostic.Start,
    length: diagnostic.Length,
    text: query.substr(diagnostic.Start, Math.max(diagnostic.Length, 1)),
  };
}

function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const K = load();
  const tables = Object.entries(input.tables || {}).map(([name, columns]) => {
    const schema = "(" + columns.map(([column, type]) => `['${column}']:${type}`).join(", ") + ")";
    return new K.Symbols.TableSymbol.$ctor7(name, schema, "");
  });
  const database = new K.Symbols.DatabaseSymbol.ctor("logs", tables);
  const globals = K.GlobalState.Default.WithDatabase(database);
  const results = (input.queries || []).map(({ name, query }) => {
    const code = K.KustoCode.ParseAndAnalyze(query, globals);
    const service = new K.Editor.KustoCodeService.ctor(code);
    return {
      name,
      diagnostics: list(code.GetDiagnostics()).map((d) => describe(d, query)),
      analyzer: list(service.GetAnalyzerDiagnostics(true)).map((d) => describe(d, query)),
    };
  });
  process.stdout.write(JSON.stringify(results));
}

main();
