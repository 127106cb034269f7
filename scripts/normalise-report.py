"""Normalise a JSON report on stdin for comparison (scripts/report-snapshot.sh): durations,
timestamps and the snapshot's temporary directory vary between runs; nothing else may."""

import json
import re
import sys

VOLATILE = {"seconds", "elapsed", "duration", "duration_s", "started", "finished",
            "generated", "created", "timestamp", "time"}


def clean(value, tmp):
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE or k.endswith("_seconds") else clean(v, tmp))
                for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, tmp) for v in value]
    if isinstance(value, str):
        value = re.sub(r"-\d+-pass(\d)", r"-<pid>-pass\1", value.replace(tmp, "<tmp>"))
        return re.sub(r"\d+(\.\d+)? ?s\b", "<t>s", value)
    return value


def main() -> int:
    text = sys.stdin.read()
    try:
        data = json.loads(text)
    except ValueError:
        print(text.replace(sys.argv[1], "<tmp>"))
        return 0
    json.dump(clean(data, sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
