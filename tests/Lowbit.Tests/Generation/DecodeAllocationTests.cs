using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization.Configs;
using Lowbit.Tests.Backends.Cpu;

namespace Lowbit.Tests.Generation;

/// <summary>The decode step (forward pass of one token, then sampling) allocates nothing on the
/// managed heap, so a long generation causes no garbage collection.</summary>
[Collection(nameof(AllocationCollection))]
public sealed class DecodeAllocationTests
{
    /// <summary>Dense, and each quantized format's kernels (the packed GEMVs).</summary>
    [Theory]
    [InlineData(null)]
    [InlineData("int8wo")]
    [InlineData("int4wo-32")]
    [InlineData("int4wo-a8-32")]
    [InlineData("fp8wo")]
    [InlineData("nf4-32")]
    [InlineData("int8dq")]
    [InlineData("uintx-3-32")]
    [InlineData("fp6")]
    [InlineData("8da4w-32")]
    [InlineData("fp8dq-row")]
    public void Decode_steps_allocate_nothing(string? quant)
    {
        var options = new ModelLoadOptions { Threads = 2, Quantization = quant is null ? null : QuantConfigs.Parse(quant) };
        using var model = LanguageModel.Load(Path.Combine(AppContext.BaseDirectory, "bundled-model"), options);
        using var state = new DecodeState(model.Config, 64, 1);
        var sampler = new Sampler(model.Config.VocabSize, new SamplingOptions(temperature: 0.8f, topK: 40, topP: 0.9f, seed: 5));
        int token = 1, pos = 0;
        void Step()
        {
            model.Transformer.Forward([token], pos++, state);
            token = sampler.Sample(state.Logits.Row<float>(0));
        }
        for (int i = 0; i < 4; i++)
            Step();

        // The test runner's threads may allocate now and then; an allocation of ours would show every time.
        long least = long.MaxValue;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 16; i++)
                Step();
            least = Math.Min(least, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.Equal(0, least);
    }
}
