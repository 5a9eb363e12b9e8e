WITH r AS (SELECT * FROM incident_signals) SELECT signal, sum(records) FROM r GROUP BY 1 HAVING sum(records) > 1
