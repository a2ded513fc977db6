"""Word count over a directory of text files, or over one text file.

Input: a directory CID (arrives as a tar stream) or a file CID (raw input included). Params:
`top` (default 10) — how many of the most frequent words to return. Output: JSON with
per-file and total counts (a single file is counted as "input").
"""
import re
import tarfile
from collections import Counter

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def main(input, params):
    top = int(params.get("top", "10"))
    total = Counter()
    files = {}

    def count(name, data):
        words = [w.lower() for w in WORD.findall(data.decode("utf-8", errors="replace"))]
        files[name] = len(words)
        total.update(words)

    is_tree = tarfile.is_tarfile(input)
    input.seek(0)
    if is_tree:
        with tarfile.open(fileobj=input, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    count(member.name, tar.extractfile(member).read())
    else:
        count("input", input.read())
    print(f"counted {sum(files.values())} words in {len(files)} files")
    return {
        "files": files,
        "words": sum(total.values()),
        "distinct": len(total),
        "top": sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
    }
