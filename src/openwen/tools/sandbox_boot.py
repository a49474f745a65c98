"""First code run inside the sandbox (passed to ``python -c``; never imported by openwen).

It drops to the sandbox's unprivileged uid when bubblewrap started it as root, sets the resource
limits, reads the user's code from stdin, runs it as ``__main__``, and writes any matplotlib
figures as PNG (base64 JSON lines) to the result pipe. Only the standard library is used.
"""

import base64
import io
import json
import os
import resource
import sys
import traceback


def _drop_privileges(uid: int) -> None:
    if os.getuid() == 0 and uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("sandbox: could not drop privileges")


def _limit(limits: dict) -> None:
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _run(code: str) -> int:
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "<code>", "exec"), namespace)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # the user's error, shown like python would
        tb = exc.__traceback__
        traceback.print_exception(type(exc), exc, tb.tb_next if tb else None)
        return 1
    return 0


def _send_figures(fd: int, max_images: int, max_bytes: int) -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or fd < 0:
        return
    for number in plt.get_fignums()[:max_images]:
        buffer = io.BytesIO()
        try:
            plt.figure(number).savefig(buffer, format="png", dpi=100)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"[figure {number} could not be saved: {exc}]", file=sys.stderr)
            continue
        data = buffer.getvalue()
        if len(data) > max_bytes:
            print(f"[figure {number} is larger than {max_bytes} bytes; not returned]",
                  file=sys.stderr)
            continue
        line = json.dumps({"png": base64.b64encode(data).decode("ascii")}) + "\n"
        view = memoryview(line.encode("ascii"))
        while view:
            view = view[os.write(fd, view):]


def main() -> None:
    config = json.loads(sys.argv[1])
    _drop_privileges(config["uid"])
    _limit(config["rlimits"])
    sys.path.extend(config["path"])
    code = sys.stdin.read()
    sys.argv = ["<code>"]
    status = _run(code)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        _send_figures(config["result_fd"], config["max_images"], config["max_image_bytes"])
    except Exception as exc:  # noqa: BLE001
        print(f"[figures could not be returned: {exc}]", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status & 0xFF)


if __name__ == "__main__":
    main()
