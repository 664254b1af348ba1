#!/usr/bin/env bash
# Builds every Lambda function for arm64 (provided.al2023) with cargo-lambda, zips each
# bootstrap, and checks that no binary needs a glibc newer than 2.34, the version of Amazon
# Linux 2023. cargo-lambda and Zig (its linker) come from PyPI into .venv.
#
# Output: target/lambda/<function>/bootstrap and target/lambda/<function>.zip
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${root}/.venv"
functions=(ws-connect ws-disconnect ws-default http-send http-send-xml sweep)
max_glibc="2.34"

if [ ! -x "${venv}/bin/cargo-lambda" ] || [ ! -x "${venv}/bin/python-zig" ]; then
    [ -x "${venv}/bin/python" ] || python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet cargo-lambda ziglang
fi
export PATH="${venv}/bin:${PATH}"
rustup target add aarch64-unknown-linux-gnu >/dev/null

cd "${root}"
packages=()
for function in "${functions[@]}"; do
    packages+=(--package "${function}")
done
cargo lambda build --release --arm64 "${packages[@]}"

failed=0
for function in "${functions[@]}"; do
    binary="target/lambda/${function}/bootstrap"
    if [ ! -f "${binary}" ]; then
        echo "missing ${binary}" >&2
        failed=1
        continue
    fi
    # The highest GLIBC_x.y symbol version the binary references.
    needed="$(objdump -T "${binary}" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)"
    needed="${needed:-none}"
    if [ "${needed}" != "none" ] && [ "$(printf '%s\n%s\n' "${needed}" "${max_glibc}" | sort -V | tail -n 1)" != "${max_glibc}" ]; then
        echo "${function}: needs glibc ${needed}, newer than ${max_glibc}" >&2
        failed=1
    fi
    (cd "target/lambda/${function}" && rm -f "../${function}.zip" && zip -q -9 "../${function}.zip" bootstrap)
    size="$(stat -c %s "target/lambda/${function}.zip")"
    echo "${function}: glibc ${needed} (max ${max_glibc}), zip ${size} bytes"
done
exit "${failed}"
