"""`make bench`: every benchmark, one after the other."""

from bench import (
    campaign,
    cold_import,
    console_pages,
    curve,
    feedback,
    local_burst,
    local_stack,
    log_bytes,
    otel_import,
    plan_chunks,
    planner,
    render_mime,
)

render_mime.main([])
print()
cold_import.main([])
print()
otel_import.main([])
print()
local_stack.main([])
print()
local_burst.main([])
print()
feedback.main([])
print()
planner.main([])
print()
plan_chunks.main([])
print()
campaign.main(["--skip-memory"])  # the planner's memory: bench.planner above
print()
curve.main(["--png", "docs/img/cost-curve.png"])
print()
log_bytes.main([])
print()
console_pages.main([])
