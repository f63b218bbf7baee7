"""The reproducible papers, by name: title, citation and the claim each run checks.

Torch-free, so ``initlab reproduce --list`` is instant. The code of paper ``NAME`` lives in
``initlab.papers.NAME`` and defines ``run(quick: bool) -> Reproduction``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperInfo:
    name: str
    title: str
    citation: str
    claim: str


PAPERS: dict[str, PaperInfo] = {
    p.name: p
    for p in (
        PaperInfo(
            "glorot2010",
            "Understanding the difficulty of training deep feedforward neural networks",
            "Glorot & Bengio, AISTATS 2010",
            "Under the 'standard' init U(+-1/sqrt(n)), tanh activations shrink by about "
            "1/sqrt(3) per layer and back-propagated gradients shrink toward the input; the "
            "normalized init U(+-sqrt(6/(n_in+n_out))) keeps both about constant.",
        ),
        PaperInfo(
            "he2015",
            "Delving deep into rectifiers",
            "He, Zhang, Ren & Sun, ICCV 2015",
            "A 30-layer ReLU net with Xavier init stalls at the start loss (ln of the class "
            "count) while He init, N(0, 2/fan_in), trains; at 22 layers both train.",
        ),
        PaperInfo(
            "saxe2014",
            "Exact solutions to the nonlinear dynamics of learning in deep linear networks",
            "Saxe, McClelland & Ganguli, ICLR 2014",
            "In deep linear networks, learning time is about independent of depth with random "
            "orthogonal init and grows with depth (or never ends) with scaled Gaussian init.",
        ),
        PaperInfo(
            "fixup2019",
            "Fixup initialization: residual learning without normalization",
            "Zhang, Dauphin & Ma, ICLR 2019",
            "Unnormalized residual networks explode at init as depth grows; with Fixup (last "
            "layer of each branch and the classifier zero, other layers He x L^-1/2) the loss "
            "and gradient norm at init do not grow with depth and deep nets train.",
        ),
        PaperInfo(
            "skipinit2020",
            "Batch normalization biases residual blocks towards the identity function",
            "De & Smith, NeurIPS 2020",
            "With batch norm the residual branch's variance relative to the skip path falls "
            "like 1/depth; SkipInit (a scalar alpha = 0 on each branch, no normalization) "
            "makes the network the identity at init and deep unnormalized nets train as well "
            "as batch-normalized ones.",
        ),
        PaperInfo(
            "mishkin2016",
            "All you need is a good init (LSUV)",
            "Mishkin & Matas, ICLR 2016",
            "Layer-sequential unit-variance init (orthogonal, then each layer rescaled in turn "
            "to output variance 1) brings every layer within tolerance in at most 5 iterations, "
            "and the net trains at least as well as with orthogonal init alone.",
        ),
        PaperInfo(
            "schoenholz2017",
            "Deep information propagation",
            "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, ICLR 2017",
            "Random tanh networks are trainable only up to a depth of about 6 xi_c, the "
            "correlation depth scale, which diverges at the order-to-chaos transition "
            "(critical sigma_w^2 = 1.76 at sigma_b^2 = 0.05).",
        ),
        PaperInfo(
            "pennington2017",
            "Resurrecting the sigmoid in deep learning through dynamical isometry",
            "Pennington, Schoenholz & Ganguli, NeurIPS 2017",
            "At criticality, orthogonal tanh networks keep the input-output Jacobian's singular "
            "values concentrated near 1 as depth grows (dynamical isometry); Gaussian tanh "
            "networks and ReLU networks do not.",
        ),
        PaperInfo(
            "xiao2018",
            "Dynamical isometry and a mean field theory of CNNs",
            "Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington, ICML 2018",
            "Delta-orthogonal convolution kernels keep the signal and the Jacobian's "
            "conditioning O(1) in vanilla tanh CNNs thousands of layers deep, and let them "
            "train hundreds of layers deep, where Gaussian kernels at the same variance do not.",
        ),
    )
}
