-- wrk: plain GETs of one page; only adds the JSON summary line.
package.path = os.getenv("KW_BENCH_DIR") .. "/?.lua;" .. package.path
done = require("common").done
