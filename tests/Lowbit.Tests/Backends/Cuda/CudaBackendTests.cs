using ILGPU;
using ILGPU.Runtime.CPU;
using Lowbit.Backends;
using Lowbit.Backends.Cpu;
using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Cuda;
using Lowbit.Cuda.Ptx;
using Lowbit.Models;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;
using Lowbit.Tests.Quantization.Formats;

namespace Lowbit.Tests.Backends.Cuda;

/// <summary>
/// The CUDA backend against the CPU backend, one body (<see cref="BackendCheck"/>) for two accelerators:
/// ILGPU's CPU accelerator here (the kernels' logic; it misses PTX codegen bugs) and a real GPU, which
/// skips without one (on the GPU machine `lowbit selftest --device cuda` runs the same checks and more).
/// </summary>
public abstract class CudaBackendTests
{
    /// <summary>The backend under test, or null to skip.</summary>
    protected abstract CudaBackend? Open();

    /// <summary>Tokens decoded greedily. ILGPU's CPU accelerator runs a few (each launch is slow there:
    /// its barriers run over 128-256 OS threads), enough to run every kernel of a model's step in order, which
    /// the one-kernel checks do not (a reverted fused norm passed every kernel check and hung here).</summary>
    protected abstract int DecodeSteps { get; }

    [Fact]
    public void Every_kernel_matches_the_cpu_backend()
    {
        using var device = Open();
        if (device is null)
            return;
        using var cpu = new CpuBackend(2);
        var results = BackendCheck.Kernels(device, cpu, large: false);
        Assert.All(results, r => Assert.True(r.Passed, r.ToString()));
    }

    [Fact]
    public void Random_device_weights_of_every_bench_format_give_finite_outputs()
    {
        using var device = Open();
        if (device is null)
            return;
        const int n = 37, k = 256;
        foreach (int m in new[] { 1, 3 })
        {
            using var x = device.Allocate(DType.F32, m, k);
            device.CopyFromHost(Enumerable.Range(0, m * k).Select(i => MathF.Sin(i)).ToArray(), x.View());
            foreach (string format in CudaBackend.BenchFormats)
            {
                using var w = device.RandomWeight(format, n, k, seed: 5);
                using var y = device.Allocate(DType.F32, m, n);
                device.Linear(x.View(), w, y.View());
                var result = new float[m * n];
                device.CopyToHost(y.View(), result);
                Assert.All(result, v => Assert.True(float.IsFinite(v), $"{format} m={m}: {v}"));
                Assert.Contains(result, v => v != 0);
            }
        }
        Assert.Throws<ArgumentException>(() => device.RandomWeight("int4wo-64", n, 96, seed: 1));
        Assert.Throws<ArgumentException>(() => device.RandomWeight("int3", n, k, seed: 1));
    }

    [Fact]
    public void Greedy_decode_of_the_bundled_model_matches_the_cpu_backend()
    {
        var device = Open();
        if (device is null)
            return;
        string dir = Path.Combine(AppContext.BaseDirectory, "bundled-model");
        using var reference = LanguageModel.Load(dir, new ModelLoadOptions { Threads = 2 });
        using var onDevice = LanguageModel.Load(dir, new ModelLoadOptions { Device = device });
        var (expected, actual) = BackendCheck.GreedyDecode(reference, onDevice, "Once upon a time", DecodeSteps);
        Assert.Equal(expected, actual);
    }
}

/// <summary>The kernels on ILGPU's CPU accelerator, warps of 32 as on the GPU.</summary>
public sealed class CudaBackendOnIlgpuCpuTests : CudaBackendTests
{
    protected override int DecodeSteps => 3;

    [Fact]
    public void Tensor_core_kernels_are_refused_off_a_gpu_and_linear_keeps_the_ilgpu_gemm()
    {
        using var backend = Open();
        Assert.False(backend.HasTensorCores);
        using var w = Tensor.Allocate(DType.BF16, 3, 8);
        using var x = backend.Allocate(DType.F32, 2, 8);
        using var y = backend.Allocate(DType.F32, 2, 3);
        Assert.Throws<NotSupportedException>(() => backend.LinearOnTensorCores(x.View(), w, y.View(), GemmTile.Simple));
        backend.Linear(x.View(), new DenseWeight(w), y.View());
        Assert.Null(backend.TensorCoreError);
        // Without tensor cores prefill attention computes in f32, so the cache it prefers stays F32.
        Assert.Equal(DType.F32, backend.PreferredKvCacheType);
    }

    /// <summary>Prefill on a GPU expands quantized weights to bf16 for the tensor cores: every element must be the
    /// format's reference dequantized value rounded to nearest even (odd N, byte rows padded to 16, several groups).</summary>
    [Theory]
    [InlineData("int8wo", 72)]
    [InlineData("int8dq", 24)]
    [InlineData("fp8wo", 40)]
    [InlineData("int4wo-32", 96)]
    [InlineData("int4wo-128", 256)]
    public void Quantized_weights_expand_to_their_reference_values_in_bf16(string format, int k)
    {
        const int n = 37;
        using var backend = Open();
        using var dense = QuantTestData.Gaussian(DType.BF16, n, k, new Random(11), out _);
        using var weight = Quantizer.QuantizeWeight(QuantConfigs.Parse(format), dense);
        ushort[] expanded = backend.ExpandedToBf16(weight);
        var row = new float[k];
        for (int r = 0; r < n; r++)
        {
            Action<int, Span<float>> dequantize = weight switch
            {
                Int8PerRowWeight w => w.Dequantize,
                Int8DynamicWeight w => w.Dequantize,
                Float8PerRowWeight w => w.Dequantize,
                Int4GroupedWeight w => w.Dequantize,
                _ => throw new InvalidOperationException(format),
            };
            dequantize(r, row);
            for (int j = 0; j < k; j++)
                Assert.True(DTypeConversion.SingleToBFloat16(row[j]) == expanded[(r * k) + j], $"{format} [{r}, {j}]: {row[j]} vs bf16 bits {expanded[(r * k) + j]:X4}");
        }
    }

    /// <summary>int8dq's prefill on a GPU quantizes x to int8 bytes for the int8 tensor-core GEMM: each token's codes
    /// and scale are the CPU's (torchao's symmetric per-token scheme, ties to even), its Σ c their exact sum.</summary>
    [Fact]
    public void Int8_activation_bytes_are_the_cpu_codes_with_their_sums()
    {
        const int m = 3, k = 1100; // four loads a pass for most threads of a 256-thread group, then a tail
        using var backend = Open();
        var rng = new Random(5);
        var x = Enumerable.Range(0, m * k).Select(i => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        for (int i = 0; i < k; i += 7)
            x[i] = 0.5f * (2f / 127f) * (2 * (i % 5) + 1); // near ties of the rounding (row 0's scale is about 2/127)
        x[2 * k + 3] = 3f; // one row with a larger range
        var (codes, sums, scales) = backend.Int8ActivationCodes(x, m, k);
        var expected = new short[k];
        for (int t = 0; t < m; t++)
        {
            float scale = DynamicActivation.QuantizeToken(DynamicActivation.Scheme.Symmetric127, x.AsSpan(t * k, k), expected);
            Assert.Equal(scale, scales[t]);
            Assert.Equal(expected.Select(c => (int)c), codes.Skip(t * k).Take(k).Select(c => (int)c));
            Assert.Equal(expected.Sum(c => c), sums[t]);
        }
    }

    protected override CudaBackend Open()
    {
        var context = Context.Create(b => b.CPU(new CPUDevice(32, 8, 1)));
        return new CudaBackend(context.CreateCPUAccelerator(0), context);
    }
}

/// <summary>The kernels on the first CUDA GPU; skipped where there is none (CI).</summary>
public sealed class CudaBackendOnGpuTests : CudaBackendTests
{
    protected override int DecodeSteps => 80;

    protected override CudaBackend? Open()
    {
        if (!CudaBackend.IsAvailable())
            Assert.Skip("No CUDA GPU here: the GPU kernels run on the device machine (lowbit selftest --device cuda).");
        return CudaBackend.Open();
    }
}
