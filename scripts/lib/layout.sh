# The function layout's check, sourced by scripts/test.sh and scripts/symbol-order.sh.
#
# binary_functions BINARY: the names of the functions defined in BINARY (its symbol table; the
# release profile keeps it), mangled, one a line.
binary_functions() {
    readelf -sW "$1" | awk '$4 == "FUNC" && $7 != "UND" {print $8}'
}

# check_symbol_order BINARY [ORDER]: say how many of the names in ORDER (default
# crates/husk/symbol-order.txt) are functions of BINARY; fail when fewer than 90% are. A stale
# order links without a word and the binary works, only every call maps up to twice the text
# (the order once matched none of the release build's Rust functions, unnoticed). Functions
# inlined away or removed since the file was made are a few; a dependency, feature, version or
# profile change renames most of them.
# The order is made for, and passed to the linker only on, x86_64 (crates/husk/build.rs): a
# binary for another architecture has other names, and nothing to check.
check_symbol_order() {
    local binary=$1 order=${2:-crates/husk/symbol-order.txt} found total
    if ! readelf -hW "$binary" | grep -q 'Machine:.*X86-64'; then
        echo "$order: not checked, $binary is not an x86_64 binary (the order is x86_64's)"
        return 0
    fi
    total=$(grep -c . "$order")
    found=$(binary_functions "$binary" | awk 'NR == FNR {have[$1] = 1; next} $1 in have {n++} END {print n + 0}' - "$order")
    echo "$order: $found of its $total names are functions of $binary"
    if [ "$total" = 0 ] || [ $((found * 10)) -lt $((total * 9)) ]; then
        echo "$order is stale: regenerate it with \`sudo scripts/symbol-order.sh\`" >&2
        return 1
    fi
}
