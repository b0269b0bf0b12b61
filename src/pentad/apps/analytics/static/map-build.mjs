// Builds map-world.json, the dashboard's country map, from Natural Earth's 1:110m countries (public
// domain) as packaged by world-atlas (ISC), with ISO 3166 numeric → alpha-2 codes from i18n-iso-countries
// (MIT). Run once, at build time, and commit the output (the dashboard loads only the JSON):
//   npm install world-atlas@2.0.2 topojson-client@3.1.0 i18n-iso-countries@7   (in a scratch folder)
//   node map-build.mjs <that folder>/node_modules > map-world.json
// Rings crossing the antimeridian (Fiji, Russia) run past the edge; the SVG clips them.
// Output: {"width": 1000, "height": 440, "countries": {"DE": ["Germany", "M…Z"], …}} — an equirectangular
// projection cut at 60°S (no Antarctica), coordinates rounded to whole units, repeated points dropped.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const modules = process.argv[2];
const require = createRequire(join(modules, "x.js"));
const topojson = require("topojson-client");
const iso = require("i18n-iso-countries");
const world = JSON.parse(readFileSync(join(modules, "world-atlas/countries-110m.json"), "utf8"));
const WIDTH = 1000, TOP = 84, BOTTOM = -60;
const scale = WIDTH / 360;
const height = Math.round((TOP - BOTTOM) * scale);

function ring(points) {
  let out = "", last = null, previous = null;
  for (let [lon, lat] of points) {
    // a ring crossing the antimeridian continues past the edge (the SVG clips it) instead of across
    if (previous !== null && Math.abs(lon - previous) > 180) lon += lon < previous ? 360 : -360;
    previous = lon;
    const x = Math.round((lon + 180) * scale), y = Math.round((TOP - Math.max(BOTTOM, Math.min(TOP, lat))) * scale);
    const here = `${x} ${y}`;
    if (here === last) continue;
    out += (last === null ? "M" : "L") + here;
    last = here;
  }
  return out + "Z";
}

const countries = {};
for (const feature of topojson.feature(world, world.objects.countries).features) {
  const code = iso.numericToAlpha2(feature.id);
  if (!code || code === "AQ") continue;
  const polygons = feature.geometry.type === "Polygon" ? [feature.geometry.coordinates] : feature.geometry.coordinates;
  const path = polygons.flatMap((polygon) => polygon.map(ring)).filter((d) => d.split("L").length > 2).join("");
  if (path) countries[code] = [feature.properties.name, path];
}
process.stdout.write(JSON.stringify({ width: WIDTH, height, countries }));
