SELECT length(repeat('x', 1000)), unnest(range(1, 10)), date_trunc('day', now())
