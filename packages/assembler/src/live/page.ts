/**
 * The live map page: one HTML document with its style and script inline (no
 * build step, no framework), served at `/` with a Content-Security-Policy that
 * allows exactly this script and style (by hash) and websockets to this host.
 */
import { createHash } from 'node:crypto';

import { PAGE_SCRIPT } from './page-script.js';

const PAGE_STYLE = `
:root { color-scheme: dark; --fg: #e8e8e8; --dim: #a0a0a0; --bg: #151515; --panel: #1f1f1f; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; padding: 16px 24px; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, sans-serif; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 20px; margin: 0; font-weight: 600; }
h2 { font-size: 16px; margin: 0 0 4px; font-family: ui-monospace, monospace; word-break: break-all; }
.pill { padding: 2px 10px; border-radius: 10px; font-size: 13px; font-weight: 600; }
.pill.ok { background: #1d5e2a; } .pill.wait { background: #6b5a12; } .pill.bad { background: #7a1f1f; }
.banner { margin: 12px 0; padding: 8px 12px; border-radius: 6px; }
.banner.error { background: #5a1a1a; border: 1px solid #b33; }
.banner.warn { background: #4d4210; border: 1px solid #a98f1e; }
form#login { margin: 12px 0; padding: 12px; background: var(--panel); border-radius: 6px; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
form#login input { font: inherit; padding: 4px 8px; min-width: 22em; }
form#login button { font: inherit; padding: 4px 14px; }
.image { margin: 18px 0; padding: 12px 14px; background: var(--panel); border-radius: 6px; }
.ident, .note, .hover { color: var(--dim); margin: 2px 0; font-size: 13px; }
.hover { font-family: ui-monospace, monospace; min-height: 1.4em; }
.sizes { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 8px 0; align-items: center; }
.rescued { font-size: 18px; font-weight: 700; margin-right: 8px; }
.chip { display: inline-flex; align-items: center; gap: 6px; font-size: 13px; }
.chip i { display: inline-block; width: 14px; height: 14px; border-radius: 2px; border: 1px solid #000; }
.canvas-wrap { width: 100%; max-width: 1100px; }
canvas.map { display: block; image-rendering: pixelated; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #333; vertical-align: top; }
th { color: var(--dim); font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
tr.gone td { color: #777; }
footer { color: var(--dim); font-size: 12px; margin-top: 24px; }
`;

const BODY = `
<header><h1>ddferry assembler · live map</h1><span id="conn" class="pill wait">starting…</span></header>
<div id="error" class="banner error" role="alert" hidden></div>
<div id="noauth" class="banner warn" hidden>This assembler runs without a token: anyone who can reach its port can watch this page and send data into its images. Start it with --token-file.</div>
<form id="login" hidden autocomplete="off">
  <span id="login-why"></span>
  <input id="token" type="password" placeholder="token" aria-label="token" autocomplete="off">
  <button type="submit">Connect</button>
</form>
<div id="images"></div>
<section class="image">
  <h2>Readers</h2>
  <p id="no-readers" class="note">No reader has sent its status to this assembler yet.</p>
  <table><thead><tr><th>reader</th><th>phase</th><th>position</th><th>rate now / average</th><th>read errors</th><th>finished / non-tried / non-trimmed / non-scraped / bad</th><th>chunk</th><th>spool</th><th>run time</th><th>last status</th></tr></thead>
  <tbody id="readers-body"></tbody></table>
</section>
<footer>Read-only. Pushed by this <code>ddferry-assembler serve</code> process as pieces are merged (each cell turns green once its data is fsynced and IMAGE.map saved) and as readers report, about once a second.
Bundles imported from a stick by <code>ddferry-assembler import</code> run in another process and are not shown here; reload after restarting serve.
Colours as ddrescueview: grey non-tried, yellow non-trimmed, blue non-scraped, red bad sector, green finished.</footer>
`;

function hash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The page. */
export const LIVE_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ddferry · live map</title>
<style>${PAGE_STYLE}</style></head>
<body>${BODY}<script>${PAGE_SCRIPT}</script></body></html>
`;

/** Its Content-Security-Policy: only its own script and style, websockets to the same host. */
export const LIVE_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(PAGE_SCRIPT)}`,
  `style-src ${hash(PAGE_STYLE)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
