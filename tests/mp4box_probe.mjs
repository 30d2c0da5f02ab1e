// Independent oracle for CMAF output: what GPAC's mp4box.js (npm `mp4box`, pinned in tests/players/package.json)
// reads from an init segment followed by media segments. Nothing here shares code with origin_proxy.
//
// Usage: node tests/mp4box_probe.mjs < request.json
//   request: {"tracks": [{"name": "v1", "init": "/path/init.mp4", "segments": ["/path/1.m4s", ...]}, ...],
//             "sources": ["/path/progressive.mp4", ...]}   ("sources" is optional)
// Prints one JSON object on stdout:
//   {"tracks": [{"name", "codec", "track_id", "timescale", "kind": "video"|"audio"|..., "audio", "errors": [...],
//                "segments": [{"fragments": [{"tfdt", "sample_count", "durations": [...],
//                              "composition_offsets": [...], "sync": [...], "sizes": [...], "sample_bytes",
//                              "mdat_bytes"}]}]}],
//    "sources": [{"path", "errors": [...], "tracks": [{"track_id", "codec", "timescale", "kind", "audio",
//                 "durations": [...], "composition_offsets": [...], "sync": [...], "sizes": [...]}]}]}
// "audio" is {"sample_rate", "channel_count", "sample_size"} from the sample entry, or null. A source is a whole
// (progressive) file; its tracks list every sample of the sample table in decode order.
// Times are in the track's timescale (mdhd of the init segment). `tfdt` is the traf's baseMediaDecodeTime as read
// from the box; durations, composition offsets (cts - dts) and sync flags are mp4box.js's own per-sample view
// (trun fields with the tfhd / trex defaults applied), grouped by the moof they came from. `sample_bytes` is the
// sum of the sample sizes of the fragment, `mdat_bytes` the payload size of the mdat that follows its moof.
// Each track is read by a fresh ISOFile; its segments are appended one after the other, as a player would.
// Exit status 0 unless the request cannot be read; mp4box.js parse errors are reported in "errors".
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// mp4box.js is installed under tests/players (npm ci --prefix tests/players), not next to this script.
const require = createRequire(new URL("./players/package.json", import.meta.url));
const { createFile, Log, MP4BoxBuffer } = require("mp4box");

Log.setLogLevel(Log.error);

function probeTrack(request) {
    const file = createFile();
    const errors = [];
    file.onError = (module, message) => errors.push(`${module}: ${message}`);
    const parts = [request.init, ...request.segments];
    const moofsAfter = [];  // moofs.length after each part was appended
    const mdatsAfter = [];
    let position = 0;
    for (const path of parts) {
        const bytes = readFileSync(path);
        const buffer = MP4BoxBuffer.fromArrayBuffer(
            bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), position);
        position += bytes.byteLength;
        file.appendBuffer(buffer);
        moofsAfter.push(file.moofs.length);
        mdatsAfter.push(file.mdats.length);
    }
    file.flush();
    const info = file.getInfo();
    const track = info.tracks[0];
    if (!track) {
        return { name: request.name, errors: [...errors, "no track in the init segment"], segments: [] };
    }
    const samples = file.getTrackSamplesInfo(track.id) || [];
    const byMoof = new Map();  // moof_number (1-based position in file.moofs) -> samples
    for (const sample of samples) {
        if (!byMoof.has(sample.moof_number)) byMoof.set(sample.moof_number, []);
        byMoof.get(sample.moof_number).push(sample);
    }
    const segments = [];
    for (let part = 1; part < parts.length; part++) {
        const fragments = [];
        for (let m = moofsAfter[part - 1]; m < moofsAfter[part]; m++) {
            const moof = file.moofs[m];
            const mdat = file.mdats[m];
            for (const traf of moof.trafs) {
                if (traf.tfhd.track_id !== track.id) continue;
                const own = byMoof.get(m + 1) || [];
                fragments.push({
                    tfdt: traf.tfdt ? Number(traf.tfdt.baseMediaDecodeTime) : null,
                    sample_count: traf.truns.reduce((n, trun) => n + trun.sample_count, 0),
                    durations: own.map((s) => s.duration),
                    composition_offsets: own.map((s) => s.cts - s.dts),
                    sync: own.map((s) => s.is_sync),
                    sizes: own.map((s) => s.size),
                    sample_bytes: own.reduce((n, s) => n + s.size, 0),
                    mdat_bytes: mdat ? mdat.size - mdat.hdr_size : null,
                });
            }
        }
        segments.push({ fragments });
    }
    return { name: request.name, ...describe(track), errors, segments };
}

function describe(track) {
    return {
        codec: track.codec,
        track_id: track.id,
        timescale: track.timescale,
        kind: track.video ? "video" : track.audio ? "audio" : track.type || "other",
        audio: track.audio || null,
    };
}

function probeSource(path) {
    const file = createFile();
    const errors = [];
    file.onError = (module, message) => errors.push(`${module}: ${message}`);
    const bytes = readFileSync(path);
    file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), 0));
    file.flush();
    const tracks = file.getInfo().tracks.map((track) => {
        const samples = file.getTrackSamplesInfo(track.id) || [];
        return {
            ...describe(track),
            durations: samples.map((s) => s.duration),
            composition_offsets: samples.map((s) => s.cts - s.dts),
            sync: samples.map((s) => s.is_sync),
            sizes: samples.map((s) => s.size),
        };
    });
    return { path, errors, tracks };
}

const request = JSON.parse(readFileSync(0, "utf8"));
const result = { tracks: request.tracks.map(probeTrack), sources: (request.sources || []).map(probeSource) };
process.stdout.write(JSON.stringify(result) + "\n");
