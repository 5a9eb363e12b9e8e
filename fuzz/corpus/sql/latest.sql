SELECT rule, count(*) AS n FROM incidents_latest WHERE status = 'firing' GROUP BY rule ORDER BY n DESC
