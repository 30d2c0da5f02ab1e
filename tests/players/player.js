// Drives one player over one stream and reports in window.__result (read by run_player.mjs).
//
// Query: player=hlsjs|dashjs|shaka, src=<manifest URL>, rate=<playbackRate, default 4>, and for a live stream
// live_s=<seconds> [until_end=1].
// VOD scenario: load -> play muted from the start at `rate` to the end -> seek to duration/2 -> play on until
// currentTime has advanced >= 1 s past the seek point.
// Live scenario (live_s given): load -> play muted at rate 1 from where the player joins -> done once currentTime
// has advanced live_s seconds past the first position played (live_ok); with until_end=1 go on until the stream
// ends (the point stops while we play: `ended`, or currentTime reaches a finite duration - 0.5 s). No seek.
// Every step only waits for events; the overall time bound is run_player.mjs's (it reads whatever __result holds
// when its deadline passes).
//
// __result fields:
//   done            the scenario finished (all steps passed) or stopped on a fatal error
//   loaded          the player parsed the manifest and the element has metadata (duration, video size)
//   played_to_end   `ended` fired, or currentTime reached duration - 0.5 s
//   seeked_ok       after the seek to duration/2, `seeked` fired and playback advanced >= 1 s past that point
//   errors          fatal player errors and media element errors: [{source, message}]
//   warnings        recoverable player errors (retries, stalls): [{source, message}]
//   video_width, video_height, audio_tracks, duration, seek_point
//   audio_languages the language of each audio track the player offers, as the player reports it (its order)
//   frames_decoded, frames_dropped, video_decoded_bytes, audio_decoded_bytes (Chromium's decoder counters)
//   timeline        [{t_ms, what}] milestones, for timing and debugging
//   live mode only: live_ok (advanced live_s), live_start_time (first position played, s), live_advanced_s,
//                   is_live (the player itself treats the stream as live), stalls (`waiting` events)
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const playerName = params.get("player") || "";
  const src = params.get("src") || "";
  const liveS = params.has("live_s") ? Number(params.get("live_s")) : null;
  const untilEnd = params.get("until_end") === "1";
  const rate = liveS !== null ? 1 : Number(params.get("rate") || "4");
  const video = document.getElementById("video");
  const t0 = performance.now();

  const R = (window.__result = {
    player: playerName, src: src, rate: rate, done: false, phase: "init",
    loaded: false, manifest_parsed: false, played_to_end: false, seeked_ok: false,
    errors: [], warnings: [], video_width: 0, video_height: 0, audio_tracks: 0, audio_languages: [], duration: null,
    seek_point: null, frames_decoded: 0, frames_dropped: 0, video_decoded_bytes: 0, audio_decoded_bytes: 0,
    player_version: null, timeline: [],
  });
  if (liveS !== null) {
    Object.assign(R, { live_s: liveS, until_end: untilEnd, live_ok: false, live_start_time: null,
                       live_advanced_s: 0, is_live: null, stalls: 0 });
  }

  function mark(what) {
    if (R.timeline.length < 200) R.timeline.push({ t_ms: Math.round(performance.now() - t0), what: what });
  }
  function text(value) {
    if (value === undefined || value === null) return String(value);
    if (typeof value === "string") return value;
    try { return JSON.stringify(value); } catch (e) { return String(value); }
  }
  function fail(source, message) {
    if (R.errors.length < 50) R.errors.push({ source: source, message: text(message).slice(0, 600) });
    mark("error " + source);
    finish();
  }
  function warn(source, message) {
    if (R.warnings.length < 50) R.warnings.push({ source: source, message: text(message).slice(0, 300) });
  }
  function sample() {
    R.video_width = video.videoWidth;
    R.video_height = video.videoHeight;
    if (Number.isFinite(video.duration)) R.duration = video.duration;
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    if (q) { R.frames_decoded = q.totalVideoFrames; R.frames_dropped = q.droppedVideoFrames; }
    R.video_decoded_bytes = video.webkitVideoDecodedByteCount || 0;
    R.audio_decoded_bytes = video.webkitAudioDecodedByteCount || 0;
    R.current_time = video.currentTime;
  }
  function finish() {
    if (R.done) return;
    sample();
    R.done = true;
    mark("done");
  }
  function loadScript(path) {
    return new Promise(function (resolve, reject) {
      const s = document.createElement("script");
      s.src = path;
      s.onload = resolve;
      s.onerror = function () { reject(new Error("cannot load " + path)); };
      document.head.appendChild(s);
    });
  }

  // ---------------------------------------------------------------------------------------------- scenario
  function maybeLoaded() {
    if (!R.loaded && R.manifest_parsed && video.readyState >= 1) {
      sample();
      R.loaded = true;
      mark("loaded");
    }
  }
  function reachedEnd() {
    if (R.played_to_end) return;
    R.played_to_end = true;
    mark("played_to_end");
    R.phase = "seek";
    R.seek_point = video.duration / 2;
    video.currentTime = R.seek_point;
  }

  video.addEventListener("loadedmetadata", function () { mark("loadedmetadata"); maybeLoaded(); });
  video.addEventListener("playing", function () {
    mark("playing");
    if (video.playbackRate !== rate) video.playbackRate = rate;
  });
  video.addEventListener("ended", function () {
    mark("ended");
    if (liveS !== null) { if (R.phase === "play") { sample(); liveProgress(true); } return; }
    if (R.phase === "play") reachedEnd();
  });
  video.addEventListener("waiting", function () { if (liveS !== null) { R.stalls += 1; mark("waiting"); } });

  // Live: count how far playback went from the first position played; never seek.
  function liveProgress(ended) {
    if (R.live_start_time === null && video.currentTime > 0) {
      R.live_start_time = video.currentTime;
      mark("live_start " + video.currentTime.toFixed(3));
    }
    if (R.live_start_time !== null) R.live_advanced_s = video.currentTime - R.live_start_time;
    if (!R.live_ok && R.live_advanced_s >= liveS) { R.live_ok = true; mark("live_ok"); }
    const atEnd = ended || (Number.isFinite(video.duration) && video.duration > 0 &&
                            video.currentTime >= video.duration - 0.5);
    if (atEnd && !R.played_to_end && R.live_start_time !== null) { R.played_to_end = true; mark("played_to_end"); }
    if (R.live_ok && (!untilEnd || R.played_to_end)) finish();
    else if (ended) finish();  // the stream ended before live_s: report what was reached
  }
  video.addEventListener("seeked", function () {
    mark("seeked " + video.currentTime.toFixed(3));
    if (R.phase === "seek") {
      R.phase = "after-seek";
      video.play().catch(function (e) { fail("play", e && e.message); });
    }
  });
  video.addEventListener("timeupdate", function () {
    sample();
    if (liveS !== null) {
      if (R.phase === "play") liveProgress(false);
    } else if (R.phase === "play" && Number.isFinite(video.duration) && video.currentTime >= video.duration - 0.5) {
      reachedEnd();
    } else if (R.phase === "after-seek" && video.currentTime >= R.seek_point + 1) {
      R.seeked_ok = true;
      mark("seeked_ok");
      finish();
    }
  });
  video.addEventListener("error", function () {
    const e = video.error;
    fail("video", e ? "MediaError code " + e.code + ": " + (e.message || "") : "error event");
  });

  function start() {
    R.phase = "play";
    video.muted = true;
    video.playbackRate = rate;
    const p = video.play();
    if (p && p.catch) p.catch(function (e) { warn("play", e && e.message); });
  }

  // ----------------------------------------------------------------------------------------------- players
  // Retries are few and short: a local server answers at once, and a broken stream should fail within seconds.
  function runHlsjs() {
    return loadScript("node_modules/hls.js/dist/hls.min.js").then(function () {
      const Hls = window.Hls;
      R.player_version = Hls.version;
      if (!Hls.isSupported()) { fail("hlsjs", "Hls.isSupported() is false (no MSE?)"); return; }
      // Live: a publishing point may restart under the player (its origin process comes back from the archive),
      // so playlist and fragment loads retry for about 6 s, as a player in the field would.
      const quick = liveS !== null ? { maxNumRetry: 5, retryDelayMs: 500, maxRetryDelayMs: 2000 }
                                   : { maxNumRetry: 1, retryDelayMs: 200, maxRetryDelayMs: 500 };
      const policy = { default: { maxTimeToFirstByteMs: 10000, maxLoadTimeMs: 20000,
                                  timeoutRetry: quick, errorRetry: quick } };
      const hls = new Hls({ fragLoadPolicy: policy, playlistLoadPolicy: policy, manifestLoadPolicy: policy,
                            keyLoadPolicy: policy, certLoadPolicy: policy, steeringManifestLoadPolicy: policy });
      window.__hls = hls;
      hls.on(Hls.Events.ERROR, function (_event, data) {
        const message = data.type + "/" + data.details + (data.response ? " HTTP " + data.response.code : "") +
          (data.error ? ": " + data.error.message : "");
        if (data.fatal) fail("hlsjs", message); else warn("hlsjs", message);
      });
      hls.on(Hls.Events.LEVEL_LOADED, function (_event, data) {
        if (liveS !== null && R.is_live === null && data.details) R.is_live = !!data.details.live;
      });
      hls.on(Hls.Events.MANIFEST_PARSED, function (_event, data) {
        const level = data.levels && data.levels[0];
        // Muxed audio (no EXT-X-MEDIA) has no audio track list: count it as one track when a codec is declared.
        R.audio_tracks = hls.audioTracks.length || (level && level.audioCodec ? 1 : 0);
        R.audio_languages = hls.audioTracks.map(function (t) { return t.lang || ""; });
        R.manifest_parsed = true;
        mark("manifest_parsed");
        maybeLoaded();
        start();
      });
      hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, function (_event, data) {
        if (data.audioTracks.length) R.audio_tracks = data.audioTracks.length;
        if (data.audioTracks.length) R.audio_languages = data.audioTracks.map(function (t) { return t.lang || ""; });
      });
      hls.on(Hls.Events.BUFFER_CODECS, function (_event, data) {
        // Muxed audio without CODECS in the playlist shows up only here, once the init segment is parsed.
        // A muxed fMP4 init segment arrives as one "audiovideo" track whose codec list names both.
        const muxed = data.audiovideo && /mp4a|ac-3|ec-3|opus|flac/.test(data.audiovideo.codec || "");
        if ((data.audio || muxed) && !R.audio_tracks) R.audio_tracks = 1;
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    });
  }

  function runDashjs() {
    return loadScript("node_modules/dashjs/dist/modern/umd/dash.all.min.js")
      .then(function () { return loadScript("node_modules/dashjs/dist/modern/umd/dash.mss.min.js"); })
      .then(function () {
        const dashjs = window.dashjs;
        const player = dashjs.MediaPlayer().create();
        window.__dashjs = player;
        R.player_version = player.getVersion();
        const events = dashjs.MediaPlayer.events;
        player.updateSettings({
          debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING },
          streaming: {
            retryAttempts: { MPD: 1, MediaSegment: 1, InitializationSegment: 1, IndexSegment: 1, other: 1 },
            retryIntervals: { MPD: 200, MediaSegment: 200, InitializationSegment: 200, IndexSegment: 200,
                              other: 200 },
          },
        });
        player.on(events.ERROR, function (e) {
          const err = e.error || {};
          fail("dashjs", (err.code !== undefined ? "code " + err.code + ": " : "") + (err.message || text(e)));
        });
        player.on(events.PLAYBACK_ERROR, function (e) {
          const err = e.error || {};
          fail("dashjs", "playback error " + (err.code !== undefined ? "code " + err.code + " " : "") + (err.message || ""));
        });
        player.on(events.STREAM_INITIALIZED, function () {
          if (liveS !== null) R.is_live = player.isDynamic();
          R.audio_tracks = player.getTracksFor("audio").length;
          R.audio_languages = player.getTracksFor("audio").map(function (t) { return t.lang || ""; });
          R.manifest_parsed = true;
          mark("manifest_parsed");
          maybeLoaded();
          start();
        });
        player.initialize(video, src, false);
        // Live: no third-party clock (dash.js defaults to time.akamai.com, unreachable here): the MPD's own
        // UTCTiming, else the manifest response's Date header. After initialize(), which restores the defaults.
        if (liveS !== null) player.clearDefaultUTCTimingSources();
      });
  }

  function runShaka() {
    return loadScript("node_modules/shaka-player/dist/shaka-player.compiled.js").then(function () {
      const shaka = window.shaka;
      shaka.polyfill.installAll();
      R.player_version = shaka.Player.version;
      if (!shaka.Player.isBrowserSupported()) { fail("shaka", "shaka.Player.isBrowserSupported() is false"); return; }
      const player = new shaka.Player();
      window.__shaka = player;
      const retry = { maxAttempts: 2, baseDelay: 200, backoffFactor: 1.5, fuzzFactor: 0, timeout: 20000 };
      player.configure({
        manifest: { retryParameters: retry },
        streaming: { retryParameters: retry, failureCallback: function (error) {
          fail("shaka", "streaming failure code " + error.code + " " + text(error.data).slice(0, 200));
        } },
      });
      player.addEventListener("error", function (event) {
        const e = event.detail;
        const message = "code " + e.code + " category " + e.category + " severity " + e.severity + " " +
          text(e.data).slice(0, 200);
        if (e.severity === shaka.util.Error.Severity.CRITICAL) fail("shaka", message); else warn("shaka", message);
      });
      return player.attach(video).then(function () { return player.load(src); }).then(function () {
        const audio = new Map();
        if (liveS !== null) R.is_live = player.isLive();
        player.getVariantTracks().forEach(function (t) { if (t.audioCodec) audio.set(t.audioId, t.language || ""); });
        R.audio_tracks = audio.size;
        R.audio_languages = Array.from(audio.values());
        R.manifest_parsed = true;
        mark("manifest_parsed");
        maybeLoaded();
        start();
      }, function (e) {
        fail("shaka", "load failed: code " + (e && e.code) + " " + text(e && e.data).slice(0, 200));
      });
    });
  }

  const runners = { hlsjs: runHlsjs, dashjs: runDashjs, shaka: runShaka };
  window.addEventListener("error", function (e) { warn("page", e.message); });
  window.addEventListener("unhandledrejection", function (e) { warn("page", e.reason && e.reason.message); });
  if (!runners[playerName]) { fail("page", "unknown player " + JSON.stringify(playerName)); return; }
  if (!src) { fail("page", "no src"); return; }
  mark("start");
  runners[playerName]().catch(function (e) { fail(playerName, e && (e.stack || e.message)); });
})();
