COPY (SELECT * FROM incidents) TO '/tmp/x.csv'; CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'
