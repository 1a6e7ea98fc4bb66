"""`make bench`: every benchmark, one after the other."""

from bench import cold_import, console_pages, feedback, local_stack, otel_import, planner, render_mime

render_mime.main([])
print()
cold_import.main([])
print()
otel_import.main([])
print()
local_stack.main([])
print()
feedback.main([])
print()
planner.main([])
print()
console_pages.main([])
