#!/usr/bin/env bash
# Benchmark driver: A/B/A/B alternation of variants per workload and concurrency.
# usage: cargo build --release && ./run.sh [seconds]   (in bench/pg-drivers; needs PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-10}
BIN=${BIN:-target/release/pgdrivers}
P="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q -d pgdrivers_bench"
psql -h 127.0.0.1 -U postgres -q -c 'DROP DATABASE IF EXISTS pgdrivers_bench' -c 'CREATE DATABASE pgdrivers_bench'
$P -f setup.sql
$P -f reset_records.sql
for w in insert claim read; do
  for c in 1 64; do
    for rep in 1 2; do
      for v in tp sqlx; do
        case $w in
          insert) $P -f reset_records.sql ;;   # same table size for every insert run
          claim)  $P -f reset_jobs.sql ;;      # 2M fresh 'available' jobs for every claim run
        esac
        out=$($BIN $v $w $c $SECS)
        echo "$out run=$rep"
      done
    done
  done
done
