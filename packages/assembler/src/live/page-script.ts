/**
 * The live page's script, as text (no build step, no framework). It runs in
 * the browser: it reads the token from the URL fragment (`#token=...`, which
 * browsers never send) or a password field, logs in over `/live` with an HMAC
 * (live-auth.ts), checks the server's proof, then draws what the server
 * pushes. `window.ddferryLive` exposes its state and its SHA-256 for tests.
 * Colours come from the mapfile package's `RENDER_PALETTE` (ddrescueview's).
 */
import { RENDER_PALETTE as P } from '@ddferry/mapfile';

const COLORS = { '?': P.nonTried, '*': P.nonTrimmed, '/': P.nonScraped, '-': P.badSector, '+': P.finished };

export const PAGE_SCRIPT = String.raw`
'use strict';
(function () {
  const COLORS = ${JSON.stringify(COLORS)};
  const ACTIVE = ${JSON.stringify(P.active)};
  const NAMES = { '?': 'non-tried', '*': 'non-trimmed', '/': 'non-scraped', '-': 'bad sector', '+': 'finished' };
  const PHASES = { '?': 'copying', '*': 'trimming', '/': 'scraping', '-': 'retrying', 'F': 'filling', 'G': 'generating', '+': 'finished' };
  const AUTH_LABEL = 'ddferry/v1 live-viewer-auth';
  const PROOF_LABEL = 'ddferry/v1 live-server-proof';
  const $ = (id) => document.getElementById(id);
  const enc = new TextEncoder();

  // ---- SHA-256 and HMAC, for browsers that hide crypto.subtle on plain http ----
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  function sha256(msg) {
    const n = msg.length;
    const padded = new Uint8Array(((n + 9 + 63) >> 6) << 6);
    padded.set(msg);
    padded[n] = 0x80;
    const dv = new DataView(padded.buffer);
    dv.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
    dv.setUint32(padded.length - 4, (n * 8) >>> 0);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    const rotr = (x, k) => (x >>> k) | (x << (32 - k));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(i * 4, h[i]);
    return out;
  }
  function hmacJs(key, msg) {
    let k = key.length > 64 ? sha256(key) : key;
    const block = new Uint8Array(64);
    block.set(k);
    const inner = new Uint8Array(64 + msg.length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) {
      inner[i] = block[i] ^ 0x36;
      outer[i] = block[i] ^ 0x5c;
    }
    inner.set(msg, 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
  }
  async function hmac(key, msg) {
    if (window.crypto && window.crypto.subtle) {
      const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return new Uint8Array(await crypto.subtle.sign('HMAC', k, msg));
    }
    return hmacJs(key, msg);
  }
  /** label, serverNonce, clientNonce, each after its 32-bit big-endian length. */
  function framed(label, serverNonce, clientNonce) {
    const parts = [enc.encode(label), serverNonce, clientNonce];
    const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
    const dv = new DataView(out.buffer);
    let at = 0;
    for (const p of parts) {
      dv.setUint32(at, p.length);
      out.set(p, at + 4);
      at += 4 + p.length;
    }
    return out;
  }
  const b64 = (bytes) => btoa(String.fromCharCode.apply(null, Array.from(bytes)));
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  function same(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  // ---- formatting ----
  function bytes(n) {
    if (n < 1000) return n + ' B';
    const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
    let v = n, u = -1;
    while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
    return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ' + units[u];
  }
  const rate = (n) => bytes(n) + '/s';
  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + (s % 60) + 's';
  }
  const pct = (part, whole) => (whole > 0 ? (100 * part / whole).toFixed(2) : '0.00') + ' %';
  const hex = (n) => '0x' + n.toString(16).toUpperCase();
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- state ----
  const state = { phase: 'starting', token: null, auth: null, images: [], maps: [], readers: [], error: null, updates: 0 };
  window.ddferryLive = { state, sha256, hmacJs, colors: COLORS };
  let ws = null;
  let retryMs = 500;
  let retryTimer = null;

  function setConn(text, kind) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'pill ' + kind;
  }
  function showError(code, message) {
    state.error = { code, message };
    const e = $('error');
    e.textContent = code + ': ' + message;
    e.hidden = false;
  }
  function clearError() {
    state.error = null;
    $('error').hidden = true;
  }
  function askToken(why) {
    $('login').hidden = false;
    $('login-why').textContent = why;
    $('token').focus();
  }

  function connect() {
    clearTimeout(retryTimer);
    if (ws) { ws.onclose = null; ws.close(); }
    state.phase = 'connecting';
    setConn('connecting…', 'wait');
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/live';
    const sock = new WebSocket(url);
    ws = sock;
    let clientNonce = null, serverNonce = null, noRetry = false;
    sock.onmessage = async (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (err) { showError('ERR_LIVE_MALFORMED', 'The server sent something that is not JSON.'); sock.close(); return; }
      if (m.type === 'challenge') {
        state.auth = m.auth;
        serverNonce = unb64(m.serverNonce);
        clientNonce = crypto.getRandomValues(new Uint8Array(32));
        if (m.auth === 'none') {
          sock.send(JSON.stringify({ type: 'auth' }));
          return;
        }
        if (!state.token) {
          noRetry = true;
          state.phase = 'need-token';
          setConn('token needed', 'bad');
          askToken('This assembler has a token. Give the text of its --token-file.');
          sock.close();
          return;
        }
        const mac = await hmac(enc.encode(state.token), framed(AUTH_LABEL, serverNonce, clientNonce));
        sock.send(JSON.stringify({ type: 'auth', clientNonce: b64(clientNonce), hmac: b64(mac) }));
      } else if (m.type === 'welcome') {
        if (m.auth === 'hmac') {
          const want = await hmac(enc.encode(state.token), framed(PROOF_LABEL, serverNonce, clientNonce));
          if (!same(want, unb64(m.proof))) {
            noRetry = true;
            showError('ERR_LIVE_BAD_PROOF', 'This server does not prove it knows the token: it is not your assembler, or the token differs. Check the address and the token.');
            sock.close();
            return;
          }
        }
        $('noauth').hidden = m.auth !== 'none';
        $('login').hidden = true;
        clearError();
        retryMs = 500;
        state.phase = 'live';
        setConn('live', 'ok');
      } else if (m.type === 'error') {
        if (m.code === 'ERR_LIVE_AUTH_FAILED') {
          noRetry = true;
          state.phase = 'refused';
          setConn('refused', 'bad');
          askToken('Wrong token. Give the text of the assembler\'s --token-file.');
        }
        showError(m.code, m.message);
      } else if (m.type === 'images') {
        state.images = m.images;
        renderImages();
      } else if (m.type === 'map') {
        state.maps[m.image] = { cells: m.cells, cellBytes: m.cellBytes, status: decodeRuns(m.runs, m.cells) };
        state.updates++;
        drawSoon(m.image);
      } else if (m.type === 'map-update') {
        const map = state.maps[m.image];
        if (map) { applyRuns(map.status, m.from, m.runs); state.updates++; drawSoon(m.image); }
      } else if (m.type === 'readers') {
        state.readers = m.readers.map((r) => Object.assign({ seenAt: Date.now() - r.ageMs }, r));
        renderReaders();
        for (let i = 0; i < state.maps.length; i++) drawSoon(i);
      }
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      if (noRetry) return;
      if (state.phase === 'live') setConn('disconnected: retrying', 'wait');
      else setConn('no connection: retrying', 'wait');
      state.phase = 'retrying';
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  // ---- the map: one byte per cell, the status character's index ----
  const CODES = '?*/-+';
  function decodeRuns(runs, cells) {
    const out = new Uint8Array(cells);
    applyRuns(out, 0, runs);
    return out;
  }
  function applyRuns(status, from, runs) {
    const re = /([?*\/+-])(\d+)/g;
    let at = from, m;
    while ((m = re.exec(runs)) !== null) {
      const n = Number(m[2]);
      status.fill(CODES.indexOf(m[1]), at, Math.min(status.length, at + n));
      at += n;
    }
  }
  const pendingDraw = new Set();
  function drawSoon(i) {
    if (pendingDraw.size === 0) requestAnimationFrame(() => { for (const j of pendingDraw) draw(j); pendingDraw.clear(); });
    pendingDraw.add(i);
  }
  function layout(canvas, cells) {
    const width = Math.max(200, Math.min(1100, canvas.parentElement.clientWidth || 900));
    let side = 1;
    for (const s of [24, 16, 12, 10, 8, 6, 5, 4, 3, 2, 1]) {
      const cols = Math.floor(width / s);
      if (Math.ceil(cells / cols) * s <= 420) { side = s; break; }
    }
    const cols = Math.floor(width / side);
    return { side, cols, rows: Math.ceil(cells / cols) };
  }
  function draw(i) {
    const map = state.maps[i], canvas = $('map-' + i);
    if (!map || !canvas) return;
    const g = layout(canvas, map.cells);
    const dpr = window.devicePixelRatio || 1;
    const w = g.cols * g.side, h = Math.max(g.side, g.rows * g.side);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = w + 'px';
      canvas.style.height = h + 'px';
    }
    canvas.dataset.side = String(g.side);
    canvas.dataset.cols = String(g.cols);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#202020';
    ctx.fillRect(0, 0, w, h);
    const gap = g.side >= 6 ? 1 : 0;
    const fills = CODES.split('').map((c) => COLORS[c]);
    for (let c = 0; c < map.cells; ) {
      const code = map.status[c];
      let e = c + 1;
      const rowEnd = (Math.floor(c / g.cols) + 1) * g.cols;
      while (e < map.cells && e < rowEnd && map.status[e] === code && !gap) e++;
      ctx.fillStyle = fills[code];
      const x = (c % g.cols) * g.side, y = Math.floor(c / g.cols) * g.side;
      ctx.fillRect(x, y, (e - c) * g.side - gap, g.side - gap);
      c = e;
    }
    // where each reader of this image's rescue is
    const img = state.images[i];
    for (const r of state.readers) {
      if (!img || !r.connected || r.rescueId !== img.rescueId) continue;
      const c = Math.min(map.cells - 1, Math.floor(r.status.pos / map.cellBytes));
      const x = (c % g.cols) * g.side, y = Math.floor(c / g.cols) * g.side;
      // at least 10 px across, so it shows on small cells too
      const m = Math.max(0, Math.ceil((10 - g.side) / 2));
      ctx.strokeStyle = ACTIVE;
      ctx.lineWidth = 2;
      ctx.strokeRect(x - 1 - m, y - 1 - m, g.side + 1 + 2 * m, g.side + 1 + 2 * m);
    }
  }

  // ---- text ----
  function renderImages() {
    const root = $('images');
    for (const img of state.images) {
      let sec = $('image-' + img.index);
      if (!sec) {
        sec = el('section', { id: 'image-' + img.index, class: 'image' });
        sec.append(el('h2', { id: 'title-' + img.index }), el('p', { id: 'ident-' + img.index, class: 'ident' }),
          el('div', { id: 'sizes-' + img.index, class: 'sizes' }));
        const wrap = el('div', { class: 'canvas-wrap' });
        const canvas = el('canvas', { id: 'map-' + img.index, class: 'map', 'aria-label': 'image map of ' + img.path });
        canvas.addEventListener('mousemove', (ev) => hover(img.index, ev));
        canvas.addEventListener('mouseleave', () => { $('hover-' + img.index).textContent = ' '; });
        wrap.append(canvas);
        sec.append(wrap, el('p', { id: 'hover-' + img.index, class: 'hover' }, ' '), el('p', { id: 'cellnote-' + img.index, class: 'note' }));
        root.append(sec);
      }
      $('title-' + img.index).textContent = img.path;
      $('ident-' + img.index).textContent = img.rescueId === null
        ? 'No rescue bound yet: the map appears when a reader connects.'
        : 'rescue ' + img.rescueId + ' · ' + img.source + ' · ' + bytes(img.size) + ' · ' + img.merged + ' pieces merged';
      const sizes = $('sizes-' + img.index);
      sizes.textContent = '';
      const total = img.size;
      const big = el('span', { class: 'rescued' }, 'rescued ' + pct(img.sizes['+'], total));
      sizes.append(big);
      for (const c of ['+', '?', '*', '/', '-']) {
        const chip = el('span', { class: 'chip' });
        const swatch = el('i');
        swatch.style.background = COLORS[c];
        chip.append(swatch, document.createTextNode(NAMES[c] + ' ' + bytes(img.sizes[c])));
        sizes.append(chip);
      }
      $('cellnote-' + img.index).textContent = img.cells > 0
        ? img.cells + ' cells of ' + (img.cellBytes < 1000 ? img.cellBytes + ' bytes' : bytes(img.cellBytes) + ' (' + img.cellBytes + ' bytes)') + '; a cell shows the most urgent status inside it (bad, non-scraped, non-trimmed, non-tried), green only when all of it is rescued. Cyan frame: where a reader is.'
        : '';
      drawSoon(img.index);
    }
  }
  function hover(i, ev) {
    const map = state.maps[i], canvas = $('map-' + i);
    if (!map) return;
    const side = Number(canvas.dataset.side), cols = Number(canvas.dataset.cols);
    const r = canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientY - r.top) / side) * cols + Math.floor((ev.clientX - r.left) / side);
    if (c < 0 || c >= map.cells) return;
    const pos = c * map.cellBytes, end = Math.min(state.images[i].size, pos + map.cellBytes);
    $('hover-' + i).textContent = 'cell ' + c + ': ' + hex(pos) + ' – ' + hex(end) + ' (' + bytes(end - pos) + '): ' + NAMES[CODES[map.status[c]]];
  }
  function renderReaders() {
    const body = $('readers-body');
    body.textContent = '';
    $('no-readers').hidden = state.readers.length > 0;
    for (const r of state.readers) {
      const s = r.status;
      const tr = el('tr', { class: r.connected ? '' : 'gone' });
      const cells = [
        r.peer + (r.connected ? '' : ' (gone)'),
        PHASES[s.phase] + ', pass ' + s.pass + (s.message ? ' · ' + s.message : '')
          + (s.paused ? ' · paused ' + duration(s.pausedSeconds) + ': ' + s.pausedText : '')
          // a read the disk has not answered for 2 s or more: the disk is struggling there
          + (s.readingSize > 0 && s.readingSeconds >= 2 ? ' · reading ' + bytes(s.readingSize) + ' at ' + hex(s.readingPos) + ' for ' + duration(s.readingSeconds) : ''),
        hex(s.pos) + ' (' + bytes(s.pos) + ')',
        rate(s.currentRate) + ' / ' + rate(s.averageRate),
        String(s.readErrors),
        bytes(s.finishedSize) + ' / ' + bytes(s.nonTriedSize) + ' / ' + bytes(s.nonTrimmedSize) + ' / ' + bytes(s.nonScrapedSize) + ' / ' + bytes(s.badSectorSize),
        (s.chunk + 1) + ' of ' + s.chunkCount,
        s.spoolPieces + ' pieces, ' + bytes(s.spoolBytes),
        duration(s.runTime),
        '',
      ];
      cells.forEach((text, k) => tr.append(el('td', k === 9 ? { class: 'age', 'data-seen': String(r.seenAt) } : {}, text)));
      body.append(tr);
    }
    ages();
  }
  function ages() {
    for (const td of document.querySelectorAll('td.age')) td.textContent = duration((Date.now() - Number(td.dataset.seen)) / 1000) + ' ago';
  }
  setInterval(ages, 1000);

  // ---- start ----
  // as the protocol's normalizeSecretText: a grouped base32 token is the same however typed
  function normalizeToken(t) {
    t = t.trim();
    const bare = t.replace(/[ -]/g, '');
    return bare.length >= 26 && /^[A-Za-z2-7]+(?:[ -]+[A-Za-z2-7]+)*$/.test(t) ? bare.toUpperCase() : t;
  }
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    state.token = normalizeToken(decodeURIComponent(m[1]));
    // keep the token out of the address bar, the history and screenshots
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = normalizeToken($('token').value);
    $('token').value = '';
    clearError();
    connect();
  });
  window.addEventListener('resize', () => { for (let i = 0; i < state.maps.length; i++) drawSoon(i); });
  connect();
})();
`;
