#!/usr/bin/env python3
"""Time wechatpy's parse_message plus the agent frame as JSON, per WeChat message.

This is the Python side of scripts/bench-xml.sh. It reads the same corpus as
bench/src/bin/xml_frame.rs, splits it by the same rules, and for each message does the same
work: parse the XML with wechatpy.parse_message, then build the frame the wxkf hub sends to
the agent and serialise it with json.dumps(..., ensure_ascii=False). With --dump it prints
each frame as one JSON line, so the runner can check that both sides produce the same frames.

Written against wechatpy 1.8.18. It does not expose VoiceMessage's MediaId16K, ViewEvent's
MenuId or SubscribeEvent's Ticket as attributes, so this script reads them from the parsed
field dict that every wechatpy message keeps in ``_data``.
"""

import argparse
import json
import statistics
import sys
import time

import wechatpy

COMPANY = "default"
SYSTEM_CONTACT_ID = "system01"
SYSTEM_NAME = "系统消息"
CODE_SYSTEM = 102
CODES = {"text": 1001, "image": 1002, "voice": 1003, "video": 1004, "location": 1005, "link": 1006}

# wechatpy's event type -> WeChat's spelling of the event, which the hub's dedup key uses.
# wechatpy renames a subscribe through a QR code to "subscribe_scan".
WECHAT_EVENT_NAMES = {
    "subscribe": "subscribe",
    "subscribe_scan": "subscribe",
    "unsubscribe": "unsubscribe",
    "scan": "SCAN",
    "location": "LOCATION",
    "click": "CLICK",
    "view": "VIEW",
}


def read_corpus(path):
    """Read a corpus file: a JSON array of XML strings, or blocks separated by blank lines."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if text.lstrip().startswith("["):
        messages = json.loads(text)
    else:
        messages = split_blocks(text)
    if not messages:
        sys.exit(f"corpus {path} contains no messages")
    return messages


def split_blocks(text):
    """Split at lines of only spaces and tabs and drop blocks that start with an XML comment."""
    blocks, current = [], []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.strip(" \t"):
            current.append(line)
            continue
        if current and not current[0].lstrip().startswith("<!--"):
            blocks.append("\n".join(current))
        current = []
    if current and not current[0].lstrip().startswith("<!--"):
        blocks.append("\n".join(current))
    return blocks


def raw_field(message, name):
    """Return a field that wechatpy parsed but does not expose as an attribute."""
    return message._data.get(name)


def optional_float(value):
    return None if value is None else float(value)


def message_body(message):
    """Return the msg_type and data.data of a message frame, as the hub fills them."""
    kind = message.type
    if kind == "text":
        return "text", {"content": message.content}
    if kind == "image":
        body = {"media_path": message.image or ""}
        if message.media_id:
            body["media_id"] = message.media_id
        return "image", body
    if kind == "voice":
        body = {"media_path": "", "media_id": message.media_id}
        if message.format:
            body["format"] = message.format
        if message.recognition and message.recognition.strip():
            body["recognition"] = message.recognition
        media_id_16k = raw_field(message, "MediaId16K")
        if media_id_16k:
            body["media_id_16k"] = media_id_16k
        return "voice", body
    if kind in ("video", "shortvideo"):
        body = {"media_path": "", "media_id": message.media_id}
        if message.thumb_media_id:
            body["thumb_media_id"] = message.thumb_media_id
        if kind == "shortvideo":
            body["wechat_type"] = "shortvideo"
        return "video", body
    if kind == "location":
        return "location", {
            "latitude": float(message.location_x),
            "longitude": float(message.location_y),
            "scale": optional_float(message.scale),
            "label": message.label or "",
        }
    if kind == "link":
        return "link", {
            "title": message.title or "",
            "description": message.description or "",
            "url": message.url,
        }
    return None, None


FNV_OFFSET = 0x6C62272E07BB014262B821756295C58D
FNV_PRIME = 0x0000000001000000000000000000013B


def fnv1a_128(data):
    """Return the 128-bit FNV-1a hash the hub derives event frame ids from."""
    value = FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV_PRIME) & ((1 << 128) - 1)
    return value


def event_fields(message, user):
    """Return the event name, Chinese text and extra fields of a user event's system frame."""
    fields = {"contact_id": user, "name": "", "avatar": ""}
    event = message.event
    if event == "subscribe":
        ticket = raw_field(message, "Ticket")
        if ticket:
            fields["ticket"] = ticket
        return "user_subscribed", f"用户 {user} 关注了公众号", fields
    if event == "subscribe_scan":
        scene = message.scene_id or None
        text = f"用户 {user} 关注了公众号"
        if scene:
            fields["scene"] = scene
            text = f"用户 {user} 扫码关注了公众号（场景 {scene}）"
        if message.ticket:
            fields["ticket"] = message.ticket
        return "user_subscribed", text, fields
    if event == "unsubscribe":
        return "user_unsubscribed", f"用户 {user} 取消了关注", fields
    if event == "scan":
        fields["scene"] = message.scene_id
        if message.ticket:
            fields["ticket"] = message.ticket
        return "user_scanned", f"用户 {user} 扫描了二维码（场景 {message.scene_id}）", fields
    if event == "location":
        fields["latitude"] = message.latitude
        fields["longitude"] = message.longitude
        fields["precision"] = message.precision
        return "user_location", f"用户 {user} 上报了地理位置", fields
    if event == "click":
        fields["key"] = message.key
        return "menu_click", f"用户 {user} 点击了菜单 {message.key}", fields
    if event == "view":
        fields["url"] = message.url
        menu_id = raw_field(message, "MenuId")
        if menu_id:
            fields["menu_id"] = menu_id
        return "menu_view", f"用户 {user} 打开了菜单链接", fields
    return None, None, None


def render(xml, seq):
    """Parse one message and return its agent frame as JSON, or None if it is not forwarded."""
    message = wechatpy.parse_message(xml)
    user = message.source
    sent_at = message.time

    if message.type == "event":
        name, text, fields = event_fields(message, user)
        if name is None:
            return None
        dedup = f"{COMPANY}|e|{user}|{sent_at}|{WECHAT_EVENT_NAMES[message.event]}"
        frame_id = "ev" + format(fnv1a_128(dedup.encode()), "032x")
        data = {
            "id": frame_id,
            "name": SYSTEM_NAME,
            "avatar": "",
            "msg_type": "system",
            "contact_id": SYSTEM_CONTACT_ID,
            "company_id": COMPANY,
            "send_time": sent_at,
            "data": {"event": name, "text": text, **fields},
            "seq": seq,
        }
        code = CODE_SYSTEM
    else:
        msg_type, body = message_body(message)
        if msg_type is None:
            return None
        data = {
            "id": str(message.id),
            "name": "",
            "avatar": "",
            "msg_type": msg_type,
            "contact_id": user,
            "company_id": COMPANY,
            "send_time": sent_at,
            "data": body,
            "seq": seq,
        }
        code = CODES[msg_type]
    return json.dumps({"data": data, "result": {"code": code, "message": "common"}}, ensure_ascii=False)


def run_round(messages, iterations):
    """Convert the corpus `iterations` times; return the mean nanoseconds per message."""
    seq = 0
    output_chars = 0
    start = time.perf_counter_ns()
    for _ in range(iterations):
        for xml in messages:
            seq += 1
            frame = render(xml, seq)
            output_chars += len(frame) if frame else 0
    elapsed = time.perf_counter_ns() - start
    return elapsed / (iterations * len(messages))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="corpus file: XML blocks or a JSON array of XML strings")
    parser.add_argument("--iterations", type=int, default=2000, help="passes over the corpus per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the median round is reported")
    parser.add_argument("--dump", action="store_true", help="print each frame as one JSON line and exit")
    parser.add_argument("--per-message", action="store_true", help="also time each corpus message on its own")
    args = parser.parse_args()
    if args.iterations < 1 or args.rounds < 1:
        parser.error("--iterations and --rounds must be at least 1")

    # Bytes, as a web framework hands over a request body and as the Rust side reads it.
    messages = [xml.encode("utf-8") for xml in read_corpus(args.corpus)]
    if args.dump:
        for index, xml in enumerate(messages):
            print(render(xml, index + 1) or "null")
        return

    print(
        f"wechatpy {wechatpy.__version__} parse_message + json.dumps: {len(messages)} messages, "
        f"{args.iterations} iterations per round, {args.rounds} rounds"
    )
    run_round(messages, args.iterations)
    rounds = []
    for number in range(1, args.rounds + 1):
        ns = run_round(messages, args.iterations)
        print(f"  round {number}: {ns:.1f} ns/message")
        rounds.append(ns)
    median = statistics.median(rounds)
    print(f"median: {median:.1f} ns/message, {1e9 / median:.0f} messages/s")
    print(f"best round: {min(rounds):.1f} ns/message")

    if args.per_message:
        print("per message (median ns, XML bytes):")
        for index, xml in enumerate(messages):
            ns = statistics.median(run_round([xml], args.iterations) for _ in range(args.rounds))
            print(f"  {index:>3} {ns:>8.1f} ns {len(xml):>5} B")


if __name__ == "__main__":
    main()
