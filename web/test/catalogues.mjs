// Every message key the app's code names literally exists in each catalogue (bokmål,
// nynorsk, English), and the three catalogues have the same keys. Keys built at run time
// (`category.${c}`) are checked through their prefix. Self-test: a key that is not there is
// reported.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const src = join(dirname(fileURLToPath(import.meta.url)), "..", "src");
const flat = (o, pre = "") =>
  Object.entries(o).flatMap(([k, v]) =>
    typeof v === "object" ? flat(v, `${pre}${k}.`) : [`${pre}${k}`],
  );
const catalogues = Object.fromEntries(
  ["nb", "nn", "en"].map((l) => [
    l,
    new Set(flat(JSON.parse(readFileSync(join(src, "locales", `${l}.json`), "utf8")))),
  ]),
);
// i18next plural forms: `x_one`/`x_other` answer for `x`.
const has = (set, key) => set.has(key) || set.has(`${key}_one`) || set.has(`${key}_other`);
const hasPrefix = (set, prefix) => [...set].some((k) => k.startsWith(prefix));

function problems(code, set) {
  const out = [];
  for (const m of code.matchAll(/\bt\(\s*"([a-zA-Z0-9_.]+)"/g)) {
    if (!has(set, m[1])) out.push(m[1]);
  }
  for (const m of code.matchAll(/\bt\(\s*`([a-zA-Z0-9_]+\.)\$\{/g)) {
    if (!hasPrefix(set, m[1])) out.push(`${m[1]}*`);
  }
  return out;
}

const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(ts|tsx)$/.test(f)) files.push(p);
  }
};
walk(src);
assert.ok(files.length > 10, "found the app's sources");

assert.deepEqual(problems('t("no.such.key")', catalogues.nb), ["no.such.key"], "self-test");
const missing = [];
for (const [lang, set] of Object.entries(catalogues)) {
  for (const f of files) {
    for (const key of problems(readFileSync(f, "utf8"), set))
      missing.push(`${lang}: ${key} (${f})`);
  }
}
assert.deepEqual(missing, [], "keys used in code but missing from a catalogue");
for (const lang of ["nn", "en"]) {
  const a = [...catalogues.nb].filter((k) => !catalogues[lang].has(k));
  const b = [...catalogues[lang]].filter((k) => !catalogues.nb.has(k));
  assert.deepEqual([a, b], [[], []], `nb and ${lang} have the same keys`);
}
console.log(`catalogues: ${files.length} files, ${catalogues.nb.size} keys in each language`);
