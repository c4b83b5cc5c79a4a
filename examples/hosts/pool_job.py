"""multiprocessing and concurrent.futures workers: log in the task; no flush or close needed.
Workers leave through os._exit (no atexit); the SDK closes its clients there too."""

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

from huggingplace import HuggingPlace

hp = HuggingPlace(background=True)


def task(n: int) -> int:
    for i in range(250):
        hp.log(user_prompt=f"{sys.argv[2]}-{n}-{i}", response="a")
    return n


if __name__ == "__main__":
    how = sys.argv[1]
    if how == "with":  # Pool.__exit__ terminates the workers (SIGTERM)
        with multiprocessing.Pool(4) as pool:
            pool.map(task, range(4))
    elif how == "close-join":
        pool = multiprocessing.Pool(4)
        pool.map(task, range(4))
        pool.close()
        pool.join()
    else:  # ProcessPoolExecutor
        with ProcessPoolExecutor(4) as executor:
            list(executor.map(task, range(4)))
