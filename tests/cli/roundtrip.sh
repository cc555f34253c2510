#!/bin/bash
# Round trips through the CLI: one compression ($1: zstd, gzip, none) and one kind of
# encryption ($2: plain, age, scrypt), for sizes around the 64 KiB chunk boundaries and
# multi-MiB random and compressible files; backup from -i, stdin and `-- cat FILE`.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

comp=$1 enc=$2
store="$T/store"
S="file://$store"
case $comp in
zstd) suffix=.zst ;;
gzip) suffix=.gz ;;
none) suffix= ;;
*) echo "usage: roundtrip.sh zstd|gzip|none plain|age|scrypt" >&2; exit 2 ;;
esac
case $enc in
plain) enc_backup=(); enc_restore=() ;;
age)
	recipient=$(bop keygen -o "$T/key.txt") || { echo "Bail out! keygen failed"; exit 1; }
	enc_backup=(-r "$recipient"); enc_restore=(--identity "$T/key.txt"); suffix=$suffix.age ;;
scrypt)
	# A low scrypt cost keeps the test fast; the 65537-byte case uses age's default (18).
	echo "correct horse battery staple" >"$T/pass.txt"
	enc_restore=(--passphrase-file "$T/pass.txt")
	enc_backup=("${enc_restore[@]}" --scrypt-work-factor 10)
	suffix=$suffix.age ;;
esac

sizes="0 1 65535 65536 65537 random:3145728 text:6291456"
modes=(input stdin command)
n=0
export T_STDOUT="$T/stdout"
for spec in $sizes; do
	case $spec in
	random:*) size=${spec#random:}; gen_random "$size" "$T/in" ;;
	text:*) size=${spec#text:}; gen_text "$size" "$T/in" ;;
	*) size=$spec; gen_random "$size" "$T/in" ;;
	esac
	# Every mode for the multi-MiB inputs; the small ones take turns.
	case $spec in *:*) use=(input stdin command) ;; *) use=("${modes[n % 3]}") ;; esac
	n=$((n + 1))
	for mode in "${use[@]}"; do
		what="$comp/$enc $spec via $mode"
		# One catalog per backup, so that "latest" is this one: ids have 1 s resolution.
		name="t$n-$mode"
		opts=(--storage "$S" --name "$name" -c "$comp" "${enc_backup[@]}")
		[ "$enc/$spec" = scrypt/65537 ] && opts=(--storage "$S" --name "$name" -c "$comp" \
			"${enc_restore[@]}")
		case $mode in
		input) expect_exit 0 "$what: backup" bop backup "${opts[@]}" -i "$T/in" ;;
		stdin) expect_exit 0 "$what: backup" bop backup "${opts[@]}" <"$T/in" ;;
		command) expect_exit 0 "$what: backup" bop backup "${opts[@]}" -- cat "$T/in" ;;
		esac
		id=$(cat "$T/out")
		data=$(data_file "$store" "$name" "$id")
		is "$what: stored as <name>/<id>/data$suffix" "${data##*/}" "data$suffix"
		expect_exit 0 "$what: list shows it" bop list --storage "$S" --name "$name"
		ok "$what: listed id" grep -q "^$id " "$T/out"
		expect_exit 0 "$what: verify latest" bop verify --storage "$S" --name "$name" \
			"${enc_restore[@]}" latest
		ok "$what: verify names it" grep -q "^$id: OK" "$T/out"
		rm -f "$T/restored"
		ok "$what: restore -o" bop restore --storage "$S" --name "$name" "${enc_restore[@]}" \
			"$id" -o "$T/restored"
		ok "$what: restored file equals the input" cmp "$T/in" "$T/restored"
		ok "$what: restore latest to stdout" sh -c '"$0" -q restore "$@" latest > "$T_STDOUT"' \
			"$BOP" --storage "$S" --name "$name" "${enc_restore[@]}"
		ok "$what: stdout equals the input" cmp "$T/in" "$T/stdout"
		if [ "$spec" = text:6291456 ] && [ "$comp" != none ]; then
			stored=$(stat -c %s "$data")
			check "$what: compressed ($stored of $size bytes)" $((stored * 3 >= size))
		fi
	done
done
done_testing
