"""Attention maps of the course's networks: Grad-CAM for every attention module, and SimAM's own
3-D weights, on real CIFAR-10 test images.

The SimAM paper (Yang et al., ICML 2021) shows Grad-CAM maps of its networks but does not say how
they were drawn (which layer, which class, how upsampled or scaled), and the code for them was not
released. This package fixes those choices, the same for every network, so that maps of different
attention modules can be compared.

**Grad-CAM** (Selvaraju et al., ICCV 2017; :func:`grad_cam`).

* Layer: the output of the last stage, i.e. of the last residual block (:func:`last_stage`;
  ``stages.2`` of a CIFAR ResNet or PreResNet, 8x8 maps for 32x32 images). It is the last layer
  that keeps a spatial layout and, in every network, comes after that block's attention module, so
  each module has acted on what is drawn. (In a pre-activation ResNet a BN and a ReLU follow before
  the pooling; the gradient passes through them.)
* Class: each image's predicted class by default, so a map shows what the network used for its
  own decision; any class can be asked for (the true label, for one). The score is the logit, before
  the softmax, as in the paper.
* Map: ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the spatial mean of the score's gradient with
  respect to channel ``k``; then bilinear upsampling to the input size (half-pixel centres,
  ``align_corners=False``, so the 8x8 cells line up with the 4x4-pixel patches they cover), then
  division by the map's maximum, per image, giving [0, 1]. Division by the maximum, not min-max
  scaling, keeps 0 meaning "no positive evidence"; a map that is 0 everywhere stays 0 (never NaN).
* Implementation: our own, a forward hook and ``torch.autograd.grad``, about forty lines. A library
  (``pytorch-grad-cam``, Captum) would add a dependency for those lines, and the course needs
  guarantees it states and tests itself: the model's own device, memory format and dtype, eval mode
  with the train flags restored, hooks removed on failure, no parameter ``.grad`` touched, and no
  NaN for a blank image.

**SimAM's weights** (:func:`simam_weights`): for every SimAM module, the tensor ``sigmoid(1/E)`` it
multiplies its input by (equation 6), computed from the input captured in one forward pass by the
package's one implementation of the energy, :func:`simam.energy.importance`, with the module's
``lambda_`` and statistics. These weights are 3-D (one per neuron); :func:`channel_mean_map` and
:func:`widest_channel_map` reduce them to one spatial map per image for drawing.

:func:`plot_attention_maps` draws both for several networks in one figure; :func:`load_image`
turns any picture (a file, an array) into the normalised 32 x 32 batch the networks take.
"""

from simam.maps.gradcam import GradCam, grad_cam, last_stage
from simam.maps.image import load_image
from simam.maps.plot import denormalise, plot_attention_maps
from simam.maps.simam_weights import (
    channel_mean_map,
    simam_modules,
    simam_weight,
    simam_weights,
    widest_channel_map,
)

__all__ = [
    "GradCam",
    "channel_mean_map",
    "denormalise",
    "grad_cam",
    "last_stage",
    "load_image",
    "plot_attention_maps",
    "simam_modules",
    "simam_weight",
    "simam_weights",
    "widest_channel_map",
]
