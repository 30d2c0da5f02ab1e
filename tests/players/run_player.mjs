// Plays one stream in headless Debian Chromium with one player library and prints one JSON object on stdout.
//
//   node run_player.mjs --player hlsjs|dashjs|shaka --src <manifest URL> [--timeout-s 60] [--rate 4]
//                       [--page-origin same|cross] [--live-s N [--until-end 1]]
//
// The player page (player.html, player.js, node_modules/...) is not served by any server: Playwright intercepts
// requests for <page origin>/__players__/* and answers them from this directory. With --page-origin same (the
// default) the page origin is the origin of --src, so the player's requests are same-origin and the media server
// needs no CORS headers. With --page-origin cross the page lives on another origin (answered the same way, never
// resolved): 127.0.0.1 <-> localhost on the same port for a loopback --src (both stay in Chromium's loopback
// address space, so Private Network Access does not block them), else http://player-page.test. Then every media
// request is cross-origin and the media server must send Access-Control-Allow-Origin (and expose/allow Range).
//
// Output: the page's window.__result (see player.js) plus timed_out, aborted_requests (cancelled by the page),
// http_errors (responses >= 400 and failed
// requests), console_errors, browser_version, wall_ms; or harness_error when the browser could not be driven.
// Exit status 0 whenever the JSON was printed; the caller judges the result.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PREFIX = "/__players__/";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required", "--mute-audio",
  // Pages answered by route() have no IP address, so Chromium puts them in the public address space and would
  // refuse their requests to 127.0.0.1 (Local Network Access) before CORS is even checked.
  "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights",
];

function parseArgs(argv) {
  const args = { player: "", src: "", timeoutS: 60, rate: 4, pageOrigin: "same", liveS: null, untilEnd: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${key}`);
    if (key === "--player") args.player = value;
    else if (key === "--src") args.src = value;
    else if (key === "--timeout-s") args.timeoutS = Number(value);
    else if (key === "--rate") args.rate = Number(value);
    else if (key === "--page-origin") args.pageOrigin = value;
    else if (key === "--live-s") args.liveS = Number(value);
    else if (key === "--until-end") args.untilEnd = value === "1";
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.player || !args.src) throw new Error("--player and --src are required");
  if (!(args.timeoutS > 0) || !(args.rate > 0)) throw new Error("--timeout-s and --rate must be > 0");
  if (args.liveS !== null && !(args.liveS > 0)) throw new Error("--live-s must be > 0");
  if (!["same", "cross"].includes(args.pageOrigin)) throw new Error("--page-origin is same or cross");
  return args;
}

// Answer /__players__/<file> from this directory; anything outside it, or missing, is a 404.
async function servePlayerFile(route) {
  const url = new URL(route.request().url());
  const rel = decodeURIComponent(url.pathname.slice(PREFIX.length));
  const file = path.resolve(HERE, rel);
  if (!file.startsWith(HERE + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    await route.fulfill({ status: 404, contentType: "text/plain", body: "not a player file\n" });
    return;
  }
  const type = TYPES[path.extname(file)] || "application/octet-stream";
  await route.fulfill({ status: 200, contentType: type, body: fs.readFileSync(file) });
}

// An origin other than src's own from which requests to src are still allowed apart from CORS (see the top).
function crossOrigin(src) {
  const other = { "127.0.0.1": "localhost", "localhost": "127.0.0.1" }[src.hostname];
  return other ? `${src.protocol}//${other}${src.port ? ":" + src.port : ""}` : "http://player-page.test";
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

async function main() {
  const started = Date.now();
  const args = parseArgs(process.argv.slice(2));
  const deadline = started + args.timeoutS * 1000;
  const out = { timed_out: false, http_errors: [], aborted_requests: [], console_errors: [] };
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "players-profile-"));
  let context = null;
  // A hard stop in case the browser itself hangs (close() included): print what we have and leave.
  const guard = setTimeout(() => {
    out.harness_error = out.harness_error || "hard deadline passed while driving the browser";
    out.timed_out = true;
    out.wall_ms = Date.now() - started;
    process.stdout.write(JSON.stringify(out) + "\n");
    process.exit(0);
  }, args.timeoutS * 1000 + 15000);
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_FLAGS,
      timeout: 30000,
    });
    out.browser_version = context.browser() ? context.browser().version() : null;
    const pageOrigin = args.pageOrigin === "same" ? new URL(args.src).origin : crossOrigin(new URL(args.src));
    await context.route(`${pageOrigin}${PREFIX}**`, servePlayerFile);
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (msg) => {
      if (msg.type() === "error" && out.console_errors.length < 30) out.console_errors.push(msg.text().slice(0, 300));
    });
    page.on("pageerror", (err) => {
      if (out.console_errors.length < 30) out.console_errors.push(("pageerror: " + err.message).slice(0, 300));
    });
    page.on("response", (res) => {
      if (res.status() >= 400 && out.http_errors.length < 30) out.http_errors.push(`${res.status()} ${res.url()}`);
    });
    page.on("requestfailed", (req) => {
      const reason = req.failure()?.errorText;
      // net::ERR_ABORTED is the page cancelling its own request (hls.js drops a playlist load when it
      // switches level); a server that fails shows as ERR_CONNECTION_RESET, ERR_CONTENT_LENGTH_MISMATCH, ...
      const list = reason === "net::ERR_ABORTED" ? out.aborted_requests : out.http_errors;
      if (list.length < 30) list.push(`failed ${reason} ${req.url()}`);
    });
    const query = new URLSearchParams({ player: args.player, src: args.src, rate: String(args.rate) });
    if (args.liveS !== null) {
      query.set("live_s", String(args.liveS));
      if (args.untilEnd) query.set("until_end", "1");
    }
    await page.goto(`${pageOrigin}${PREFIX}player.html?${query}`, {
      waitUntil: "load", timeout: Math.max(1000, deadline - Date.now()),
    });
    let result = null;
    for (;;) {
      result = await page.evaluate(() => window.__result || null);
      if (result && result.done) break;
      if (Date.now() >= deadline) { out.timed_out = true; break; }
      await sleep(200);
    }
    Object.assign(out, result || { harness_error: "the page set no window.__result" });
  } catch (err) {
    out.harness_error = String(err && (err.stack || err.message) || err).slice(0, 2000);
  } finally {
    out.wall_ms = Date.now() - started;
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    clearTimeout(guard);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ harness_error: String(err && err.message || err) }) + "\n");
  process.exit(2);
});
