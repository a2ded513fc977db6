"""Word count over a directory of text files.

Input: a directory CID (arrives as a tar stream). Params: `top` (default 10) — how many of
the most frequent words to return. Output: JSON with per-file and total counts.
"""
import re
import tarfile
from collections import Counter

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def main(input, params):
    top = int(params.get("top", "10"))
    total = Counter()
    files = {}
    with tarfile.open(fileobj=input, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            words = [w.lower() for w in WORD.findall(text)]
            files[member.name] = len(words)
            total.update(words)
    print(f"counted {sum(files.values())} words in {len(files)} files")
    return {
        "files": files,
        "words": sum(total.values()),
        "distinct": len(total),
        "top": sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
    }
