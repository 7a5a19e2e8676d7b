#!/usr/bin/env bash
# Compiler flags for building llama.cpp on this machine (the embedded engine's
# llama-cpp-python and bench's llama-server), printed on one line.
#
# llama.cpp builds with -march=native. On x86 hosts whose CPU reports Intel AMX
# (Sapphire Rapids and later) that compiles AMX tile kernels in, and under
# hypervisors that advertise AMX without enabling its tile state for guests the
# first batched matrix multiply dies with a general protection fault in
# ldtilecfg. The AVX-512/AVX2 kernels are as fast for a model this small, so
# AMX is switched off (explicit -mno-* flags win over -march=native in any order).
case "$(uname -m)" in
  x86_64 | amd64) echo "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" ;;
  *) echo "" ;;
esac
