"""A sha256 manifest of a directory.

Input: a directory CID (a tar stream). Writes `/outputs/SHA256SUMS` in `sha256sum` format
(check it with `sha256sum -c` after `ipfaas get`), and `/outputs/summary.json`. Returns the
number of files and bytes hashed.
"""
import hashlib
import json
import tarfile


def main(input, params):
    lines = []
    total = 0
    with tarfile.open(fileobj=input, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            h = hashlib.sha256()
            f = tar.extractfile(member)
            while chunk := f.read(1 << 20):
                h.update(chunk)
            total += member.size
            lines.append(f"{h.hexdigest()}  {member.name}\n")
    lines.sort(key=lambda l: l[66:])
    with open("/outputs/SHA256SUMS", "w") as out:
        out.writelines(lines)
    summary = {"files": len(lines), "bytes": total}
    with open("/outputs/summary.json", "w") as out:
        json.dump(summary, out, sort_keys=True)
    return summary
