// table_anchor_node.mjs : DuckDB and Polars, the engines a user would pick
// today for bench/table_bench.c's workloads on one machine, from the npm
// registry (@duckdb/node-api, nodejs-polars with its linux-x64-gnu binary),
// installed in bench/node/ by scripts/install-deps.sh --bench.
//
// Run by the bench program as
//     node bench/table_anchor_node.mjs SYSTEM BENCH PATH REPS ROWS
// SYSTEM: duckdb (an in-memory database, threads=2) or polars
// (POLARS_MAX_THREADS=2, set by the caller before the module loads).
// BENCH, as table_bench.c, each timed from the CSV on disk:
//     table_read_csv        every column, types inferred, into memory
//     table_groupby_mean    mean of d1..d4 per (k1, k2), streaming where the
//                           engine streams (DuckDB's SQL over read_csv; a
//                           Polars lazy scan)
//     table_groupby_median  median of d1 per k1
//     table_apply           a derived column d1 * 2 + d2 over every row, the
//                           result held in memory
//     table_nlargest        the 10 rows of largest d1 (nulls never chosen)
// Prints "sample X" (seconds) per repetition; "SKIP reason" and exit 3 when
// the engine is not installed; "FAIL ..." on a wrong answer.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [system, bench, path, repsArg, rowsArg] = process.argv.slice(2);
const reps = Number(repsArg) || 1;
const rows = Number(rowsArg) || 0;
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "node", "package.json"));

function load(name) {
  try {
    return require(name);
  } catch (e) {
    console.log(`SKIP ${name} is not installed in ${join(here, "node")} ` +
                `(scripts/install-deps.sh --bench): ${String(e.message).split("\n")[0]}`);
    process.exit(3);
  }
}

const sqlPath = path.replace(/'/g, "''");

async function duckdb() {
  const { DuckDBInstance } = load("@duckdb/node-api");
  const inst = await DuckDBInstance.create(":memory:", { threads: "2" });
  const con = await inst.connect();
  const src = `read_csv('${sqlPath}', header = true)`;
  const count = async (sql) => {
    const r = await con.runAndReadAll(sql);
    return Number(r.getRows()[0][0]);
  };
  return async () => {
    switch (bench) {
      case "table_read_csv":
        await con.run(`CREATE OR REPLACE TABLE t AS SELECT * FROM ${src}`);
        return count("SELECT count(*) FROM t");
      case "table_groupby_mean":
        return count(`SELECT count(*) FROM (SELECT k1, k2, avg(d1), avg(d2), avg(d3), avg(d4)
                      FROM ${src} GROUP BY k1, k2)`);
      case "table_groupby_median":
        return count(`SELECT count(*) FROM (SELECT k1, median(d1) FROM ${src} GROUP BY k1)`);
      case "table_apply":
        await con.run(`CREATE OR REPLACE TABLE a AS SELECT *, d1 * 2 + d2 AS r FROM ${src}`);
        return count("SELECT count(*) FROM a");
      default:
        return count(`SELECT count(*) FROM (SELECT * FROM ${src} WHERE d1 IS NOT NULL
                      ORDER BY d1 DESC LIMIT 10)`);
    }
  };
}

async function polars() {
  const pl = load("nodejs-polars");
  return async () => {
    switch (bench) {
      case "table_read_csv":
        return pl.readCSV(path).height;
      case "table_groupby_mean":
        return (await pl.scanCSV(path).groupBy(["k1", "k2"])
          .agg(pl.col("d1").mean(), pl.col("d2").mean(), pl.col("d3").mean(), pl.col("d4").mean())
          .collect()).height;
      case "table_groupby_median":
        return (await pl.scanCSV(path).groupBy("k1").agg(pl.col("d1").median()).collect()).height;
      case "table_apply":
        return (await pl.scanCSV(path)
          .withColumns(pl.col("d1").mul(2).add(pl.col("d2")).alias("r")).collect()).height;
      default:
        return (await pl.scanCSV(path).filter(pl.col("d1").isNotNull())
          .sort("d1", true).head(10).collect()).height;
    }
  };
}

const run = system === "duckdb" ? await duckdb() : await polars();
const want = { table_read_csv: rows, table_apply: rows, table_groupby_median: 100,
               table_nlargest: 10 }[bench];
for (let i = 0; i < reps; i++) {
  const t0 = process.hrtime.bigint();
  const n = await run();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (want !== undefined && want !== 0 && n !== want) {
    console.log(`FAIL ${system} ${bench}: ${n} rows, want ${want}`);
    process.exit(1);
  }
  console.log(`sample ${dt.toFixed(6)}`);
}
