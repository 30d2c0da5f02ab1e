"""Sample entries -> RFC 6381 codec strings and the basic picture/sound facts (pure; bytes in, values out).

Reads the first entry of an stsd box (ISO/IEC 14496-12 §8.5.2): the VisualSampleEntry / AudioSampleEntry fixed
fields (QuickTime sound description versions 1 and 2 included), then the codec configuration box among its
children:
- avcC (ISO/IEC 14496-14 §5.3.3)      -> avc1.PPCCLL  (profile_idc, constraint flags, level_idc; lower-case hex)
- hvcC (ISO/IEC 14496-15 §8.3.3)      -> hvc1.[A-C]P.C.TL.B0[.B1...] as in 14496-15 Annex E
- av1C (AV1 Codec ISO Media File Format Binding §2.3, §5) -> av01.P.LLT.DD
- esds (ISO/IEC 14496-1 §7.2.6)       -> mp4a.40.AOT for MPEG-4 audio, mp4a.OO (object type, hex) otherwise;
  QuickTime keeps esds inside a `wave` box, which is searched too
- Opus -> "opus", ac-3 -> "ac-3", ec-3 -> "ec-3", fLaC -> "flac"; any other 4CC is returned as is.
Nothing here raises on odd bytes: a configuration that cannot be read gives the bare 4CC, because an operator
tool and a manifest writer both prefer a vague answer to none.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import MalformedBox
from .header import iter_boxes

VISUAL_ENTRY_BYTES = 86  # header (8) + SampleEntry (8) + VisualSampleEntry fixed fields (70), §8.5.2.2
AUDIO_ENTRY_BYTES = 36  # header (8) + SampleEntry (8) + AudioSampleEntry fixed fields (20), §8.5.2.2
QT_SOUND_V1_EXTRA = 16  # QuickTime sound description version 1: four more 32-bit fields
QT_SOUND_V2_EXTRA = 36  # version 2: replaces the rate/channels with a float64 rate and a 32-bit channel count

_SIMPLE = {b"Opus": "opus", b"ac-3": "ac-3", b"ec-3": "ec-3", b"fLaC": "flac"}


@dataclass(frozen=True)
class SampleEntryInfo:
    """What the first sample entry says.

    Attributes:
        fourcc: the sample entry's 4CC, e.g. b"avc1".
        codec_string: RFC 6381 `codecs` value, e.g. "avc1.64001f", "mp4a.40.2", "opus".
        width, height: pixels, for visual entries; None otherwise.
        sample_rate_hz, channel_count: for audio entries; None otherwise.
    """

    fourcc: bytes
    codec_string: str
    width: int | None = None
    height: int | None = None
    sample_rate_hz: int | None = None
    channel_count: int | None = None


def first_sample_entry(stsd_payload: bytes) -> bytes | None:
    """The first sample entry box (header included) of an stsd payload (after the stsd box header), or None."""
    if len(stsd_payload) < 16:
        return None
    size = struct.unpack_from(">I", stsd_payload, 8)[0]
    if size < 8 or 8 + size > len(stsd_payload):
        return None
    return stsd_payload[8 : 8 + size]


def describe_sample_entry(entry: bytes, handler_type: bytes) -> SampleEntryInfo:
    """Codec string and picture/sound facts of one sample entry box (header included).

    Args:
        entry: the sample entry box, e.g. from `first_sample_entry`.
        handler_type: b"vide" or b"soun" (decides which fixed fields precede the child boxes).
    """
    fourcc = entry[4:8] if len(entry) >= 8 else b"????"
    if handler_type == b"vide" and len(entry) >= VISUAL_ENTRY_BYTES:
        width, height = struct.unpack_from(">HH", entry, 32)
        children = _children(entry, VISUAL_ENTRY_BYTES)
        return SampleEntryInfo(fourcc, _codec_string(fourcc, children), width=width, height=height)
    if handler_type == b"soun" and len(entry) >= AUDIO_ENTRY_BYTES:
        version = struct.unpack_from(">H", entry, 16)[0]
        channels = struct.unpack_from(">H", entry, 24)[0]
        rate = struct.unpack_from(">I", entry, 32)[0] >> 16
        start = AUDIO_ENTRY_BYTES
        if version == 1:
            start += QT_SOUND_V1_EXTRA
        elif version == 2 and len(entry) >= AUDIO_ENTRY_BYTES + QT_SOUND_V2_EXTRA:
            rate = round(struct.unpack_from(">d", entry, 40)[0])
            channels = struct.unpack_from(">I", entry, 48)[0]
            start += QT_SOUND_V2_EXTRA
        children = _children(entry, start)
        channels = _config_channels(fourcc, children) or channels
        return SampleEntryInfo(fourcc, _codec_string(fourcc, children), sample_rate_hz=rate, channel_count=channels)
    return SampleEntryInfo(fourcc, _codec_string(fourcc, {}))


def sample_entry_boxes(entry: bytes, handler_type: bytes) -> dict[bytes, bytes]:
    """Payloads of a visual or audio sample entry's child boxes by 4CC (avcC, esds, ...; the first of each)."""
    if handler_type == b"vide" and len(entry) >= VISUAL_ENTRY_BYTES:
        return _children(entry, VISUAL_ENTRY_BYTES)
    if handler_type == b"soun" and len(entry) >= AUDIO_ENTRY_BYTES:
        version = struct.unpack_from(">H", entry, 16)[0]
        extra = {1: QT_SOUND_V1_EXTRA, 2: QT_SOUND_V2_EXTRA}.get(version, 0)
        if version == 2 and len(entry) < AUDIO_ENTRY_BYTES + QT_SOUND_V2_EXTRA:
            extra = 0
        return _children(entry, AUDIO_ENTRY_BYTES + extra)
    return {}


def avc_parameter_sets(avcc: bytes) -> tuple[list[bytes], list[bytes]]:
    """(SPS NAL units, PPS NAL units) of an avcC payload (ISO/IEC 14496-15 §5.3.3.1). Raises ValueError when
    the record is cut short."""
    if len(avcc) < 6:
        raise ValueError("avcC shorter than its fixed fields")
    pos = 5
    found: list[list[bytes]] = []
    for count_mask in (0x1F, 0xFF):  # numOfSequenceParameterSets (5 bits), numOfPictureParameterSets (8 bits)
        if pos >= len(avcc):
            raise ValueError("avcC ends before its parameter set count")
        count = avcc[pos] & count_mask
        pos += 1
        units = []
        for _ in range(count):
            if pos + 2 > len(avcc):
                raise ValueError("avcC ends inside a parameter set")
            size = struct.unpack_from(">H", avcc, pos)[0]
            if pos + 2 + size > len(avcc):
                raise ValueError("avcC ends inside a parameter set")
            units.append(bytes(avcc[pos + 2 : pos + 2 + size]))
            pos += 2 + size
        found.append(units)
    return found[0], found[1]


def aac_specific_config(esds: bytes) -> bytes | None:
    """The AudioSpecificConfig (DecoderSpecificInfo) of an MPEG-4 Audio esds payload, or None for another object
    type or none given."""
    found = _decoder_config(esds)
    if found is None or found[0] != 0x40 or not found[1]:
        return None
    return bytes(found[1])


def _children(entry: bytes, start: int) -> dict[bytes, bytes]:
    """Payloads of the boxes after the fixed fields; a wave box (QuickTime) is opened one level."""
    found: dict[bytes, bytes] = {}
    try:
        for span in iter_boxes(entry, start, len(entry), "stsd/entry"):
            payload = bytes(entry[span.payload_offset : span.end])
            found.setdefault(span.fourcc, payload)
            if span.fourcc == b"wave":
                for inner in iter_boxes(entry, span.payload_offset, span.end, "stsd/entry/wave"):
                    found.setdefault(inner.fourcc, bytes(entry[inner.payload_offset : inner.end]))
    except MalformedBox:  # a broken child list still leaves the 4CC (see the module docstring)
        pass
    return found


# ETSI TS 102 366 Table 4.3: full-bandwidth channels per acmod; the LFE adds one.
_ACMOD_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)


def _config_channels(fourcc: bytes, children: dict[bytes, bytes]) -> int | None:
    """Channels from the codec configuration, which decoders follow over the sample entry's channelcount (always 2
    for AC-3/E-AC-3, often 2 for mono AAC): dac3 (TS 102 366 §F.4), the first independent substream of dec3
    (§F.6), the AudioSpecificConfig of esds (14496-3 §1.6.3.5)."""
    if fourcc == b"ac-3" and len(children.get(b"dac3", b"")) >= 3:
        bits = int.from_bytes(children[b"dac3"][:3], "big")  # fscod 2, bsid 5, bsmod 3, acmod 3, lfeon 1, ...
        return _ACMOD_CHANNELS[(bits >> 11) & 0x7] + ((bits >> 10) & 0x1)
    if b"esds" in children:
        return _aac_channels(children[b"esds"])
    if fourcc == b"ec-3" and len(children.get(b"dec3", b"")) >= 5:
        byte = children[b"dec3"][3]  # after data_rate 13, num_ind_sub 3, fscod 2, bsid 5, reserved 1: asvc 1, bsmod 3, acmod 3, lfeon 1
        return _ACMOD_CHANNELS[(byte >> 1) & 0x7] + (byte & 0x1)
    return None


def _codec_string(fourcc: bytes, children: dict[bytes, bytes]) -> str:
    name = fourcc.decode("latin-1")
    if fourcc in _SIMPLE:
        return _SIMPLE[fourcc]
    if b"avcC" in children:
        return avc_codec_string(name, children[b"avcC"]) or name
    if b"hvcC" in children:
        return hevc_codec_string(name, children[b"hvcC"]) or name
    if b"av1C" in children:
        return av1_codec_string(children[b"av1C"]) or name
    if b"esds" in children:
        return mp4a_codec_string(children[b"esds"]) or name
    return name


def avc_codec_string(fourcc: str, avcc: bytes) -> str | None:
    """avc1.PPCCLL from an AVCDecoderConfigurationRecord: profile_idc, constraint_set flags byte, level_idc."""
    if len(avcc) < 4:
        return None
    return f"{fourcc}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def hevc_codec_string(fourcc: str, hvcc: bytes) -> str | None:
    """The 14496-15 Annex E string from an HEVCDecoderConfigurationRecord.

    Elements: general_profile_space as "", "A", "B", "C" + general_profile_idc (decimal); the 32
    general_profile_compatibility_flags in reverse bit order (hex, no leading zeros); "L" or "H" for
    general_tier_flag + general_level_idc (decimal); the six constraint indicator bytes (hex), trailing zero
    bytes omitted.
    """
    if len(hvcc) < 13:
        return None
    profile_space = hvcc[1] >> 6
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile_idc = hvcc[1] & 0x1F
    compatibility = int.from_bytes(hvcc[2:6], "big")
    reversed_flags = int(f"{compatibility:032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [fourcc, f"{'ABC'[profile_space - 1] if profile_space else ''}{profile_idc}", f"{reversed_flags:X}",
             f"{tier}{hvcc[12]}"]
    parts += [f"{byte:X}" for byte in constraints]
    return ".".join(parts)


def av1_codec_string(av1c: bytes) -> str | None:
    """av01.P.LLT.DD from an AV1CodecConfigurationRecord: seq_profile, seq_level_idx_0 (2 digits), seq_tier_0
    as "M"/"H", bit depth (08, 10, 12 from high_bitdepth and twelve_bit)."""
    if len(av1c) < 3 or av1c[0] & 0x80 == 0:  # marker bit must be 1
        return None
    profile = av1c[1] >> 5
    level = av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high_bitdepth, twelve_bit = bool(av1c[2] & 0x40), bool(av1c[2] & 0x20)
    bit_depth = 12 if (high_bitdepth and twelve_bit) else 10 if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{bit_depth:02d}"


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, payload start, payload end) of the descriptor at `pos` (14496-1 §8.3.3 expandable size)."""
    if pos >= len(data):
        return None
    tag = data[pos]
    pos += 1
    size = 0
    for _ in range(4):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, min(pos + size, len(data))


def _decoder_config(esds: bytes) -> tuple[int, bytes | None] | None:
    """(objectTypeIndication, DecoderSpecificInfo payload or None) from an esds payload (version/flags first)."""
    es = _descriptor(esds, 4)
    if es is None or es[0] != 0x03:
        return None
    _, pos, end = es
    if pos + 3 > end:
        return None
    flags = esds[pos + 2]
    pos += 3
    if flags & 0x80:  # streamDependenceFlag: dependsOn_ES_ID
        pos += 2
    if flags & 0x40:  # URL_Flag: URLlength + URLstring
        pos += 1 + (esds[pos] if pos < end else 0)
    if flags & 0x20:  # OCRstreamFlag: OCR_ES_Id
        pos += 2
    config = _descriptor(esds, pos)
    if config is None or config[0] != 0x04 or config[1] + 13 > config[2]:
        return None
    _, pos, end = config
    specific = _descriptor(esds, pos + 13)
    if specific is None or specific[0] != 0x05 or specific[1] >= specific[2]:
        return esds[pos], None
    return esds[pos], esds[specific[1] : specific[2]]


def mp4a_codec_string(esds: bytes) -> str | None:
    """mp4a.40.AOT (MPEG-4 audio: audioObjectType from the AudioSpecificConfig, 14496-3 §1.6.2.1) or mp4a.OO
    (objectTypeIndication, lower-case hex), from an esds payload (version/flags, then ES_Descriptor)."""
    found = _decoder_config(esds)
    if found is None:
        return None
    object_type, asc = found
    if object_type != 0x40:
        return f"mp4a.{object_type:02x}"
    if not asc:
        return "mp4a.40"
    audio_object_type = asc[0] >> 3
    if audio_object_type == 31 and len(asc) > 1:  # escape: 32 + the next 6 bits
        audio_object_type = 32 + (((asc[0] & 0x07) << 3) | (asc[1] >> 5))
    return f"mp4a.40.{audio_object_type}"


def _aac_channels(esds: bytes) -> int | None:
    """channelConfiguration of a plain AudioSpecificConfig (5-bit object type, 4-bit frequency index); None for
    an escaped object type, an explicit frequency, or configuration 0 (a program_config_element decides)."""
    found = _decoder_config(esds)
    if found is None or found[0] != 0x40 or not found[1] or len(found[1]) < 2:
        return None
    asc = found[1]
    if asc[0] >> 3 == 31 or ((asc[0] & 0x07) << 1 | asc[1] >> 7) == 15:
        return None
    config = (asc[1] >> 3) & 0x0F
    return {7: 8}.get(config, config) if 0 < config < 8 else None
