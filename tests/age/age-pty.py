#!/usr/bin/env python3
"""Runs a command (the real `age -p` or `age -d`) on a pseudo-terminal and answers its
passphrase prompts, since age reads passphrases only from the terminal.

    age-pty.py PASSPHRASE-FILE COMMAND ARGS...

The passphrase is the first line of the file (it never appears in argv). Exits with the
command's status; 124 on a 60 s timeout.
"""
import os
import pty
import re
import select
import signal
import sys
import time

PROMPT = re.compile(rb"passphrase[^\n]*: ", re.IGNORECASE)


def main():
    with open(sys.argv[1], "rb") as f:
        secret = f.read().split(b"\n")[0].rstrip(b"\r")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[2], sys.argv[2:])
    seen = b""
    answered = 0
    deadline = time.monotonic() + 60
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stderr.write("age-pty: timed out\n")
            return 124
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
        # Answer each new prompt once.
        prompts = PROMPT.findall(seen)
        while answered < len(prompts):
            os.write(fd, secret + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    text = seen.decode("utf-8", "replace")
    if text.strip():
        sys.stderr.write(text.replace(secret.decode("utf-8", "replace"), "[REDACTED]") + "\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
