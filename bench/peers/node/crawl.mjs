// Peer: the Node pattern: global fetch (undici, llhttp) + p-limit + regular expressions for the
// title and links; new same-host links are scheduled as pages finish, one JSON line per page.
//
//     node crawl.mjs START -c 16 -o out.jsonl      (p-limit installed next to this file)
import { createWriteStream } from "node:fs";
import pLimit from "p-limit";

const args = process.argv.slice(2);
const start = args[0];
const concurrency = Number(args[args.indexOf("-c") + 1] || 16);
const out = createWriteStream(args.indexOf("-o") >= 0 ? args[args.indexOf("-o") + 1] : "/tmp/out_node.jsonl");
const host = new URL(start).host;
const limit = pLimit(concurrency);
const seen = new Set([start]);
const HREF = /<a\s[^>]*?href\s*=\s*["']([^"'#]*)[^"']*["']/gi;
const TITLE = /<title[^>]*>([^<]*)<\/title>/i;
let pending = 0;
let finish;
const done = new Promise((resolve) => { finish = resolve; });

async function crawl(url) {
  try {
    const response = await fetch(url);
    const html = await response.text();
    const title = (TITLE.exec(html)?.[1] ?? "").trim() || null;
    const links = [];
    for (const match of html.matchAll(HREF)) {
      const href = match[1];
      if (href.startsWith("mailto:") || href.startsWith("javascript:")) continue;
      let link;
      try { link = new URL(href, url); } catch { continue; }
      link.hash = "";
      links.push(link.href);
    }
    const unique = [...new Set(links)];
    out.write(JSON.stringify({ url, title, links: unique }) + "\n");
    for (const link of unique) {
      if (!seen.has(link) && new URL(link).host === host) {
        seen.add(link);
        schedule(link);
      }
    }
  } catch (error) {
    // a failed page is skipped, as the other peers do
  }
}

function schedule(url) {
  pending += 1;
  limit(() => crawl(url)).finally(() => {
    pending -= 1;
    if (pending === 0) finish();
  });
}

schedule(start);
await done;
await new Promise((resolve) => out.end(resolve));
