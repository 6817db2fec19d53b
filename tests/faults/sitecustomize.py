"""Fault injection for the tests, in every Python process that has this folder on its path
(PYTHONPATH): the sweep's driver and its worker processes alike, whether forked or spawned.

MLPLAB_FAULT=backward: the 3rd backward pass of every network whose first hidden layer has 5
units raises FloatingPointError("injected fault") — a genuine failure inside a run.
"""

import os

if os.environ.get("MLPLAB_FAULT") == "backward":
    import mlplab.network as network

    original = network.MLP.backward_

    def faulty(self, *args, **kwargs):
        if self.sizes[1] == 5:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                raise FloatingPointError("injected fault")
        return original(self, *args, **kwargs)

    network.MLP.backward_ = faulty
