"""Write the Parquet dataset fixtures of crates/oxrl-tasks/tests/fixtures/ with pyarrow (the
library Hugging Face `datasets` uses): a prompt/answer file with an integer answer column
(snappy), and a chat file with a `messages` list-of-struct column and a trailing assistant turn
(lz4 — oxrl reads the pure-Rust codecs snappy, lz4 and uncompressed).

Regenerate with:  python tools/make_dataset_fixtures.py   (needs pyarrow)
"""

import os

import pyarrow as pa
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "oxrl-tasks", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)

plain = pa.table({
    "question": [f"What is {i} + {i + 1}?" for i in range(10)],
    "final": pa.array([2 * i + 1 for i in range(10)], type=pa.int64()),
})
pq.write_table(plain, os.path.join(OUT, "plain.parquet"), compression="snappy")

chat = pa.table({
    "messages": [
        [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": f"What is {i} * 3?"},
            {"role": "assistant", "content": f"answer: {3 * i}"},
        ]
        for i in range(6)
    ],
    "answer": [str(3 * i) for i in range(6)],
})
pq.write_table(chat, os.path.join(OUT, "chat.parquet"), compression="lz4")
print("wrote", OUT)
