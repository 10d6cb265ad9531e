"""A broadcast chat over WebSockets: every message a client sends is pushed to every client.

Run: python snippets/protocols/websocket_chat.py
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve


# --8<-- [start:server]
class ChatRoom:
    """Everyone connected to /<name> is a member; the server pushes without being asked."""

    def __init__(self) -> None:
        self.members: set[ServerConnection] = set()

    async def handler(self, ws: ServerConnection) -> None:
        name = (ws.request.path if ws.request else "/?").strip("/")
        self.members.add(ws)
        broadcast(self.members, f"* {name} joined")
        try:
            async for message in ws:  # one task per connection, reading its messages
                broadcast(self.members, f"{name}: {message}")
        finally:
            self.members.discard(ws)
            broadcast(self.members, f"* {name} left")


# --8<-- [end:server]


# --8<-- [start:script]
async def chat(script: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Play a script of (who, "join" | "leave" | message); return what each client received.
    After every step, each connected client reads exactly one broadcast message."""
    room = ChatRoom()
    clients: dict[str, ClientConnection] = {}
    seen: dict[str, list[str]] = {}
    async with serve(room.handler, "127.0.0.1", 0) as server, asyncio.timeout(5):
        host, port = server.sockets[0].getsockname()
        for who, action in script:
            if action == "join":
                clients[who] = await connect(f"ws://{host}:{port}/{who}", open_timeout=5)
                seen[who] = []
            elif action == "leave":
                await clients.pop(who).close()
            else:
                await clients[who].send(action)
            for name, ws in clients.items():
                seen[name].append(await ws.recv())
        for ws in clients.values():
            await ws.close()
    return seen


# --8<-- [end:script]


SCRIPT = [
    ("alice", "join"),
    ("bob", "join"),
    ("carol", "join"),
    ("alice", "hi all"),
    ("carol", "hey alice"),
    ("bob", "leave"),
]


def main() -> None:
    for name, messages in asyncio.run(chat(SCRIPT)).items():
        print(f"{name} received: {messages}")


if __name__ == "__main__":
    main()
