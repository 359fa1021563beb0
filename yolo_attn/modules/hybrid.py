"""Channel + spatial attention: CBAM and Coordinate Attention."""
import torch
import torch.nn as nn

from ._base import AttentionModule, DirectionalAttention, Placement, declare_layer
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels, no_second_input


@declare_layer(name="CBAM", paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018", family="hybrid",
               aliases=("CBAMBlock", "CBAM_Block", "CBAMAttention"), foreign_args=("spatial_kernel_size",),
               placements=(Placement("stage_outputs", "YOLOv5s + CBAM (Woo et al., ECCV 2018), r=16, 7x7 spatial kernel."),
                           Placement("c3_bottlenecks", "YOLOv5s + CBAM inside the backbone C3s' bottlenecks (Woo et "
                                                       "al., ECCV 2018), r=16, 7x7.", file_tag="c3cbam")),
               cpu_goal=1.05)
class CBAM(AttentionModule):
    """Convolutional Block Attention Module: channel gate, then spatial gate, in that order.

    M_c = gate(MLP(GAP(x)) + MLP(GMP(x))), x' = x * M_c;
    M_s = gate(BN(Conv_kxk([mean_C(x'), max_C(x')]))), out = x' * M_s.

    Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
    Official code: github.com/Jongchan/attention-module (MODELS/cbam.py): shared MLP of Linear
    layers with bias; spatial conv without bias followed by BN.
    Defaults: r = 16 (rd_ratio=1/16), spatial kernel 7 (padding k//2), ReLU, sigmoid.
    Choices / deviations:
      - spatial pooled maps stacked in the paper's order [mean, max]; the official ChannelPool
        stacks [max, mean] (weights trained with the official code would need their two input
        channels swapped);
      - the shared MLP is 1x1 convs with bias (same maths as Linear), run once on the avg- and
        max-pooled vectors stacked along the batch axis;
      - the spatial BN (official code, not in the paper's formula) has the official momentum 0.01 (the
        running statistics move 1% per step; PyTorch's default is 0.1) and eps 1e-5. yolov5's
        initialize_weights resets only exact nn.BatchNorm2d instances, so these values survive in a YOLO
        model. It is a PooledBatchNorm2d, so an N=1, 1×1 map in train mode does not raise; otherwise it
        is a plain BatchNorm2d(1);
      - no in-place multiply at inference: the former `x.mul_(ms)` under `torch.no_grad()` saved one
        temporary of the input's size but made the traced graph depend on the grad mode, so
        torch.jit.trace failed ("Graphs differed across invocations"); out of place, tracing and ONNX
        export record the same graph in train and eval mode.
    """

    def __init__(self, channels, rd_ratio=1 / 16, rd_channels=None, spatial_kernel_size=7,
                 act_layer='relu', gate_layer='sigmoid'):
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = get_act_layer(act_layer)()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        k = spatial_kernel_size
        self.spatial_conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)
        self.spatial_bn = PooledBatchNorm2d(1, momentum=0.01)
        self.gate = get_act_layer(gate_layer)()

    def _channel_attn(self, x):
        pooled = torch.cat([x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)])
        avg, mx = self.fc2(self.act(self.fc1(pooled))).chunk(2)
        return self.gate(avg + mx)

    def _spatial_attn(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return self.gate(self.spatial_bn(self.spatial_conv(pooled)))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        mc = self._channel_attn(x)
        return {'channel': mc, 'spatial': self._spatial_attn(x * mc)}

    def forward(self, x):
        x = x * self._channel_attn(x)
        return x * self._spatial_attn(x)


@declare_layer(name="CoordAtt", paper="Hou et al., Coordinate Attention, CVPR 2021", family="hybrid",
               aliases=("CA", "CoordAttention", "CA_Block", "CABlock"),
               foreign_args=("reduction",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + Coordinate Attention (Hou et al., CVPR 2021), reduction 32."),
                           Placement("c3_bottlenecks", "YOLOv5s + Coordinate Attention inside the backbone C3s' "
                                                       "bottlenecks (Hou et al., CVPR 2021), reduction 32.",
                                     file_tag="c3coordatt")),
               cpu_goal=1.05)
class CoordAtt(DirectionalAttention):
    """Coordinate Attention: out = x * a_h * a_w, a_h depending on the row only, a_w on the column.

    x_h = mean over W (N×C×H×1), x_w = mean over H (N×C×W×1, transposed); concatenated along the
    spatial axis -> 1x1 conv C->mip (bias) -> BN -> act; split; a_h = gate(conv_h(y_h)),
    a_w = gate(conv_w(y_w)), both 1x1 mip->C with bias.

    Paper: Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.
    Official code: github.com/houqb/CoordAttention (coordatt.py): mip = max(8, C // 32),
    h-swish = x * relu6(x + 3) / 6, conv biases as above.
    Defaults: rd_ratio=1/32, min_rd_channels=8, hard-swish (nn.Hardswish, identical to the official
    h_swish), sigmoid; output channels equal input channels.
    Choices: pooling with tensor.mean over an axis (AdaptiveAvgPool2d((None, 1)) breaks ONNX export
    and profilers); plain BN after conv1 (it always sees H+W >= 2 values per channel). conv1's bias
    is kept as in the official code although the following BN cancels it in train mode. No in-place
    multiply at inference (it made torch.jit.trace fail; see CBAM). No deviation from the paper.
    """

    def __init__(self, channels, rd_ratio=1 / 32, min_rd_channels=8, act_layer='hard_swish',
                 gate_layer='sigmoid'):
        super().__init__()
        mip = make_rd_channels(channels, rd_ratio, min_channels=min_rd_channels)
        self.conv1 = nn.Conv2d(channels, mip, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = get_act_layer(act_layer)()
        self.conv_h = nn.Conv2d(mip, channels, 1, bias=True)
        self.conv_w = nn.Conv2d(mip, channels, 1, bias=True)
        self.gate = get_act_layer(gate_layer)()

    def _attn(self, x):
        h = x.shape[2]
        x_h = x.mean(3, keepdim=True)  # N×C×H×1
        x_w = x.mean(2, keepdim=True).transpose(2, 3)  # N×C×W×1
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], 2))))
        y_h, y_w = y[:, :, :h], y[:, :, h:]
        return self.gate(self.conv_h(y_h)), self.gate(self.conv_w(y_w.transpose(2, 3)))
