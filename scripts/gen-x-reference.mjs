// Regenerates crates/psn-platforms/tests/fixtures/x-reference-lengths.json: random texts near
// X's limit, pieces separated by spaces, with their weighted length per the reference JavaScript library (npm twitter-text 3).
//   mkdir /tmp/ttref && cd /tmp/ttref && npm install twitter-text@3
//   NODE_PATH=/tmp/ttref/node_modules node scripts/gen-x-reference.mjs > crates/psn-platforms/tests/fixtures/x-reference-lengths.json
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const twttr = require("twitter-text");

// A small deterministic generator (mulberry32) so the fixture is reproducible.
let seed = 0x5eed;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const pieces = [
  "hello", "world", "psn", "ship", "today", "naïve", "café", "über", "日本語", "テスト", "한국어",
  "中文", "😀", "👨‍👩‍👧", "🇩🇪", "❤️", "https://example.com", "example.com", "http://t.co/abc",
  "https://psn.dev/a/b?c=d", "#rust", "@someone", "$TSLA", "—", "…", "1.", "end.", "\n", "   ",
  "a.b", "www.example.org", "foo.bar.baz", "x.com/home", "Ω", "ß", "ǅ", "e\u0301",
];
const cases = [];
for (let i = 0; i < 800; i++) {
  const target = 200 + Math.floor(rand() * 140);
  let text = "";
  while (twttr.parseTweet(text).weightedLength < target) {
    text += (text ? " " : "") + pick(pieces);
  }
  const r = twttr.parseTweet(text);
  cases.push({ text, weighted_length: r.weightedLength, valid: r.valid });
}
console.log(JSON.stringify({ source: "npm twitter-text 3 parseTweet (config v3)", cases }, null, 1));
