# Shared by the peers built from source (llama_cpp.sh, whisper_cpp.sh):
# source with `. "$here/vendored.sh"`.

# vendored_source PACKAGE INNER_DIR: unpacks the C/C++ tree INNER_DIR that
# the Python package PACKAGE vendors in its sdist into ./src (pip download,
# never installed). Only this package's source: `--no-binary :all:` would
# also build its build backends (cmake among them) from source.
vendored_source() {
    [ -d src ] && return 0
    python3 -m pip download --no-deps --no-binary "$1" -q "$1" -d sdist
    tar -xzf sdist/*.tar.gz
    mv ./*-*/"$2" src
    rm -rf sdist ./*-*/
}

# cmake_on_path: puts cmake on PATH, from the cmake package's wheel in a venv
# of its own (./venv) when the system has none.
cmake_on_path() {
    command -v cmake >/dev/null && return 0
    [ -x venv/bin/cmake ] || { python3 -m venv venv && venv/bin/pip install -q cmake; }
    PATH="$PWD/venv/bin:$PATH"
}
