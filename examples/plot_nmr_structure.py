"""
NMR shieldings and the posterior of candidate structures
========================================================

The ¹H and ¹³C shielding models shipped with matchar (:class:`matchar.nmr.ShiftModel`:
SOAP descriptors and a sparse Gaussian process, trained on molecular crystals) predict a
shielding with a calibrated standard deviation for every atom. Given experimental
shifts, :func:`matchar.nmr.structure_posterior` turns those predictions into the
posterior probability of each candidate structure, with the assignment of peaks to
sites and the reference shielding marginalised.

Here the candidates are the two isomers of C₂H₆O, ethanol and dimethyl ether, as
isolated molecules, and the "experiment" is the approximate liquid-state spectrum of
ethanol (¹H: CH₃ 1.2, CH₂ 3.7, OH 2.6 ppm; ¹³C: 18.4 and 58.3 ppm).
"""

import ase.build
import matplotlib.pyplot as plt
import numpy as np

import matchar as mc

# %%
# Predict shieldings with uncertainties
# -------------------------------------

models = {el: mc.nmr.ShiftModel.pretrained(el) for el in ("H", "C")}
names = ["ethanol", "dimethyl ether"]
predicted = {"H": [], "C": []}
predicted_std = {"H": [], "C": []}
for formula in ["CH3CH2OH", "CH3OCH3"]:
    molecule = ase.build.molecule(formula)
    molecule.center(vacuum=6.0)
    for el, model in models.items():
        sigma, std = model.predict(molecule, return_std=True)  # ppm, one per atom of el
        predicted[el].append(sigma)
        predicted_std[el].append(std)
        print(f"{formula:9s} {el}: " + ", ".join(f"{s:.1f}±{e:.1f}" for s, e in zip(sigma, std)))
predicted = {el: np.array(v) for el, v in predicted.items()}
predicted_std = {el: np.array(v) for el, v in predicted_std.items()}

# %%
# Posterior of the candidates
# ---------------------------
# One experimental value per atom (the CH₃ peak three times, the CH₂ peak twice); which
# peak belongs to which atom is summed over. ``sigma_exp`` is the typical error of the
# prediction against experiment beyond the model's own σ.

experimental = {
    "H": np.array([1.2, 1.2, 1.2, 3.7, 3.7, 2.6]),
    "C": np.array([18.4, 58.3]),
}
posterior = mc.nmr.structure_posterior(
    predicted, predicted_std, experimental, sigma_exp={"H": 0.33, "C": 2.0},
    assignment="marginalize", return_details=True,
)  # fmt: skip
for name, p in zip(names, posterior.probabilities):
    print(f"P({name} | shifts) = {p:.3g}")
for el in ("H", "C"):
    alone = mc.nmr.structure_posterior(
        predicted[el], predicted_std[el], experimental[el],
        sigma_exp={"H": 0.33, "C": 2.0}[el], assignment="marginalize",
    )  # fmt: skip
    print(f"{el} shifts alone: " + ", ".join(f"{n} {p:.3f}" for n, p in zip(names, alone)))

# %%
# The ¹H data alone barely separate the isomers; the two ¹³C shifts decide. The parity
# plots show each candidate's predictions against the experiment, every peak against
# its most probable site.

fig, ax = plt.subplots(1, 3, figsize=(12, 3.8))
posterior.plot(ax=ax[0], labels=names)
posterior.plot_parity(0, nucleus="C", ax=ax[1])
ax[1].set_title("ethanol, ¹³C")
posterior.plot_parity(1, nucleus="C", ax=ax[2])
ax[2].set_title("dimethyl ether, ¹³C")
fig.tight_layout()
plt.show()
