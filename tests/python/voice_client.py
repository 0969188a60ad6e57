"""An independent voice client (seed 003), not roomrig's: Python `websockets`, with its own
PHP-style signature. Run against a voice server: python voice_client.py URL SID1 SID2.

It checks what the seed says: the end_point answer, create_token first, signed frames acted
on (a wrong sign refused), notices with the seed's fields, and a departure told to the one
other member, who reports it. Exit 0 when all holds; an assertion message otherwise.
"""

import asyncio
import hashlib
import json
import sys
import time
import urllib.request

import websockets


def php_json(value):
    """json_encode(value, JSON_UNESCAPED_UNICODE) for the values this client sends."""
    if isinstance(value, dict):
        if not value:
            return "[]"
        return "{" + ",".join(php_json(str(k)) + ":" + php_json(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(php_json(v) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


class Client:
    def __init__(self, ws, sid, token):
        self.ws, self.sid, self.token = ws, sid, token

    @classmethod
    async def connect(cls, ws_url, sid):
        ws = await websockets.connect(f"{ws_url}/?sid={sid}")
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["action"] == "create_token", first
        return cls(ws, sid, first["online_token"])

    def frame(self, action, fields, sign=None):
        frame = dict(fields, action=action, sid=self.sid, online_token=self.token,
                     timestamp=int(time.time()))
        ordered = {k: frame[k] for k in sorted(frame)}
        frame["sign"] = sign or hashlib.md5(php_json(ordered).encode()).hexdigest()
        return json.dumps(frame, ensure_ascii=False)

    async def send(self, action, fields, sign=None):
        await self.ws.send(self.frame(action, fields, sign))

    async def recv(self, within=5.0):
        return json.loads(await asyncio.wait_for(self.ws.recv(), within))

    async def nothing(self, within=0.3):
        try:
            got = await asyncio.wait_for(self.ws.recv(), within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame {got}")


async def main(base, sid1, sid2):
    with urllib.request.urlopen(f"{base}/api/websocket/end_point") as r:
        ep = json.load(r)
    assert ep["error_code"] == 0 and ep["ping_interval"] > 0, ep
    ws_url = ep["end_point"]
    a = await Client.connect(ws_url, sid1)
    b = await Client.connect(ws_url, sid2)
    await a.send("enter_room", {"channel_name": "py/room"})
    own = await a.recv()
    assert own["action"] == "enter_room" and own["channel_name"] == "py/room", own
    await b.send("enter_room", {"channel_name": "py/room"})
    seen = await a.recv()
    for field in ["user_id", "nickname", "sex", "avatar_url", "avatar_small_url", "channel_name"]:
        assert field in seen, (field, seen)
    await b.recv()  # its own

    await a.send("send_topic_msg", {"content": "héllo / \u2028 world"}, sign="0" * 32)
    refused = await a.recv()
    assert refused.get("error_code"), refused
    await b.nothing()

    await a.send("send_topic_msg", {"content": "héllo / \u2028 world"})
    msg = await b.recv()
    assert msg["action"] == "send_topic_msg" and msg["content"] == "héllo / \u2028 world", msg

    await a.send("up", {"room_seat_id": 1})
    up = await b.recv()
    assert up["action"] == "up" and up["currenr_room_seat_id"] == 1, up

    await a.ws.close()
    exit_room = await b.recv()
    assert exit_room["action"] == "exit_room", exit_room
    assert exit_room["user_id"] == own["user_id"] and exit_room["channel_name"] == "py/room"
    assert exit_room["room_seat"]["id"] == 1, exit_room
    await b.send("exit_room_report", {"user_id": exit_room["user_id"]})
    await b.nothing()
    with urllib.request.urlopen(f"{base}/api/users/me?sid={sid1}") as r:
        assert json.load(r)["current_room_id"] == ""
    await b.ws.close()
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
