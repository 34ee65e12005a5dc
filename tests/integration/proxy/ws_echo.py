#!/usr/bin/python3
"""ws_echo.py: a WebSocket echo upstream for test_proxy.py (python3-websockets): first sends 'user=<X-Remote-User>', then echoes every message. Usage: ws_echo.py PORT (prints 'ready')."""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    await ws.send('user=' + ws.request_headers.get('X-Remote-User', ''))
    async for msg in ws:
        await ws.send(msg)


async def main():
    async with websockets.serve(echo, '127.0.0.1', int(sys.argv[1])):
        print('ready', flush=True)
        await asyncio.Future()


asyncio.run(main())
