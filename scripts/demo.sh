# shellcheck shell=bash
# ./x demo: bring the stack up, run the scenario, tear it down.

demo_main() {
  stack_up
  trap 'stack_down' EXIT
  eval "$(stack_env)"
  log "calling $GATEWAY_URL/functions/v1/health"
  curl -fsS "$GATEWAY_URL/functions/v1/health" | python3 -m json.tool
}
