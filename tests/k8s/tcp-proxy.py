#!/usr/bin/env python3
"""A TCP proxy for the informer tests: tcp-proxy.py HOST PORT.

Listens on 127.0.0.1 (a free port, printed on the first line of stdout) and forwards every
connection to HOST:PORT byte for byte (TLS passes through untouched). Commands, one per
line on stdin, each answered with "ok" on stdout:
  drop   reset every open connection (a watch cut mid-stream); keep listening
  down   stop listening and reset every connection (the API server is away)
  up     listen again on the same port
  count  print the number of connections accepted so far, then "ok"
  delay MS  hold every chunk from the server MS milliseconds (0: none), a slow network
The proxy exits when stdin closes.
"""
import asyncio
import sys


class Proxy:
    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.listen_port = 0
        self.server = None
        self.conns = set()
        self.accepted = 0
        self.delay = 0.0

    async def pipe(self, reader, writer, slow=False):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if slow and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, creader, cwriter):
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.open_connection(self.host, self.port)
        except OSError:
            cwriter.transport.abort()
            return
        pair = (cwriter, uwriter)
        self.conns.add(pair)
        try:
            await asyncio.gather(self.pipe(creader, uwriter), self.pipe(ureader, cwriter, True))
        finally:
            self.conns.discard(pair)

    def drop(self):
        for pair in list(self.conns):
            for w in pair:
                w.transport.abort()
        self.conns.clear()

    async def up(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.listen_port,
                                                 reuse_address=True)
        self.listen_port = self.server.sockets[0].getsockname()[1]

    async def down(self):
        if self.server:
            self.server.close()
            self.drop()
            await self.server.wait_closed()
            self.server = None
        self.drop()


async def main():
    proxy = Proxy(sys.argv[1], int(sys.argv[2]))
    await proxy.up()
    print(proxy.listen_port, flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            break
        cmd = line.decode().strip()
        if cmd == "drop":
            proxy.drop()
        elif cmd == "down":
            await proxy.down()
        elif cmd == "up":
            if not proxy.server:
                await proxy.up()
        elif cmd.startswith("delay "):
            proxy.delay = int(cmd.split()[1]) / 1000.0
        elif cmd == "count":
            print(proxy.accepted, flush=True)
        print("ok", flush=True)
    await proxy.down()


if __name__ == "__main__":
    asyncio.run(main())
