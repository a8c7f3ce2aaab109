// Render Vega-Lite specs to SVG with the Vega bundles Snakemake installs (no network, no browser).
// usage: node render_vega.js <assets dir> <specs.json: {"name": spec, ...}>  -> prints {"name": svg}
const fs = require("fs");
const path = require("path");
const Module = require("module");
const [assetsArg, specsPath] = process.argv.slice(2);
const assets = path.resolve(assetsArg);
const vega = require(path.join(assets, "vega", "vega.js"));
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {  // vega-lite's UMD header requires 'vega'
  return request === "vega" ? path.join(assets, "vega", "vega.js") : resolve.call(this, request, ...rest);
};
const vegaLite = require(path.join(assets, "vega-lite", "vega-lite.js"));
(async () => {
  const specs = JSON.parse(fs.readFileSync(specsPath, "utf8"));
  const out = {};
  for (const [name, spec] of Object.entries(specs)) {
    const compiled = vegaLite.compile(spec).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: "none" });
    out[name] = await view.toSVG();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
