"""The CIFAR networks of the SimAM paper,
each taking any attention module of :mod:`simam.attention`.

ResNet-20/32/44/56/110/164 (He et al. 2016), pre-activation ResNet-20/56/110/164 (He et al. 2016,
"Identity Mappings"), WRN-16-8 and WRN-28-10 (Zagoruyko & Komodakis 2016) and a CIFAR MobileNetV2
(Sandler et al. 2018), with the attention modules where the SimAM reference code puts them.
``python -m simam.models`` prints their parameter counts. :func:`insert_attention` puts any
attention module into a torchvision or timm ResNet.
"""

from simam.models.factory import (
    count_parameters,
    create_model,
    list_models,
    training_flops_per_image,
)
from simam.models.insert import insert_attention, residual_blocks
from simam.models.mobilenetv2 import InvertedResidual, MobileNetV2
from simam.models.preresnet import PreActBasicBlock, PreActBottleneck, PreActResNet
from simam.models.resnet import BasicBlock, Bottleneck, ResNet
from simam.models.wide_resnet import WideBasicBlock, WideResNet

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "MobileNetV2",
    "PreActBasicBlock",
    "PreActBottleneck",
    "PreActResNet",
    "ResNet",
    "WideBasicBlock",
    "WideResNet",
    "count_parameters",
    "create_model",
    "insert_attention",
    "list_models",
    "residual_blocks",
    "training_flops_per_image",
]
