#!/bin/bash
# Proves that every envoy_dynamic_module_callback_* symbol libevmesh.so needs
# is exported by the pinned Envoy binary ($EVMESH_ENVOY_BIN), that the module
# exports the hooks Envoy requires, and that it exports nothing else.
set -euo pipefail
module="$1"
envoy="${EVMESH_ENVOY_BIN:-}"
if [[ -z "$envoy" || ! -x "$envoy" ]]; then
  echo "FAIL: EVMESH_ENVOY_BIN must name the pinned envoy binary (got '${envoy}')" >&2
  exit 1
fi
ver=$("$envoy" --version)
grep -q "/1.40.0/" <<<"$ver" || { echo "FAIL: $envoy is not Envoy 1.40.0: $ver" >&2; exit 1; }

needed=$(nm -D --undefined-only "$module" | awk '{print $2}' | grep '^envoy_dynamic_module_callback_' | sort -u)
exported=$(nm -D --defined-only "$envoy" | awk '{print $3}' | grep '^envoy_dynamic_module_callback_' | sort -u)
[[ -n "$needed" ]] || { echo "FAIL: the module needs no callbacks?" >&2; exit 1; }
missing=$(comm -23 <(echo "$needed") <(echo "$exported"))
if [[ -n "$missing" ]]; then
  echo "FAIL: Envoy does not export: $missing" >&2
  exit 1
fi
echo "ok: $(echo "$needed" | wc -l) callbacks needed, all exported by $(echo "$exported" | wc -l) in Envoy"

hooks=$(nm -D --defined-only "$module" | awk '{print $3}' | sort -u)
for h in on_program_init on_network_filter_config_new on_network_filter_config_destroy on_network_filter_new \
         on_network_filter_new_connection on_network_filter_read on_network_filter_write on_network_filter_event \
         on_network_filter_destroy; do
  grep -qx "envoy_dynamic_module_$h" <<<"$hooks" || { echo "FAIL: module does not export envoy_dynamic_module_$h" >&2; exit 1; }
done
others=$(grep -v '^envoy_dynamic_module_on_' <<<"$hooks" | grep -v '^_init$\|^_fini$' || true)
if [[ -n "$others" ]]; then
  echo "FAIL: module exports more than its hooks: $others" >&2
  exit 1
fi
echo "ok: required hooks exported, nothing else"
