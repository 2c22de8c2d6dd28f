#!/usr/bin/env bash
# Kept for old habits: the runner runs every drill (atv-bench list).
exec cargo run --locked --release -q -p atv-bench -- run drills "$@"
