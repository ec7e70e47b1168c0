"""The bundled reference teacher: a deterministic, OpenAI-compatible stand-in for a real
teacher model, used by the tests, the benchmarks and the demo (never by a real run's client).

  server    the HTTP server (`python -m teacher.reference.server`, `start_server`)
  model     what it answers (arithmetic solved step by step, echo for other prompts)
  faults    fault injection (error codes, delays, truncation; seeded schedules)
  problems  generated arithmetic problem sets for tests and benchmarks
"""
