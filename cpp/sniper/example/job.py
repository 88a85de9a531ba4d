"""A Python job running ExampleRecoAlg on a few events and reading its results back from the store.

    python job.py build/libExampleReco.so [--model MODEL] [--events N]

Needs SNiPER's Python package on PYTHONPATH (source $SNIPER_PREFIX/share/sniper/setup.sh) and the
juno_bridge package with its SNiPER component (`make sniper`)."""
import argparse

import numpy as np
import Sniper

import juno_bridge.sniper as jbs


class PrintEnergy(Sniper.PyAlgBase):
    """Reads what ExampleRecoAlg wrote into the store ("example_energy") every event."""

    def __init__(self, name, reco):
        super().__init__(name)
        self.reco, self.energies = reco, []

    def initialize(self):
        self.store = jbs.store(self)
        # the session the algorithm runs on (between its initialize and finalize): backend, sharing
        self.session = jbs.session_stats(self.reco)
        return True

    def execute(self):
        self.energies.append(float(self.store["example_energy"][0]))
        return True

    def finalize(self):
        return True


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("library", help="the built libExampleReco.so")
parser.add_argument("--model", default="default",
                    help="any model juno-bridge opens (default: the project's default model)")
parser.add_argument("--events", type=int, default=5)
args = parser.parse_args()

Sniper.loadDll(args.library)
task = Sniper.Task("task")
task.setEvtMax(args.events)
reco = task.createAlg("ExampleRecoAlg/reco")
reco.property("Model").set(args.model)
reco.property("Threads").set(1)
show = jbs.add_alg(task, PrintEnergy("show", reco))  # the task holds only a borrowed reference: keep it alive

jbs.run(task)  # raises juno_bridge.sniper.JobError (exit status 1) when SNiPER ends the job with an error
print("session:", show.session)
print("energies [MeV]:", np.round(show.energies, 3).tolist())
