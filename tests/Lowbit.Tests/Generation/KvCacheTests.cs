using Lowbit.Evaluation;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Tensors;

namespace Lowbit.Tests.Generation;

/// <summary>The KV cache in BF16 (<see cref="ModelLoadOptions.KvCacheType"/>) against the F32 cache on the bundled model.</summary>
public sealed class KvCacheTests
{
    private static LanguageModel Bundled(DType cache) =>
        LanguageModel.Load(Path.Combine(AppContext.BaseDirectory, "bundled-model"), new ModelLoadOptions { Threads = 1, KvCacheType = cache });

    /// <summary>Layer 0's keys and values come before any attention, so the BF16 cache must hold exactly the F32 cache's
    /// rows rounded to nearest even (a cache stored unrounded, truncated or at the wrong rows fails).</summary>
    [Fact]
    public void The_bf16_cache_holds_the_f32_rows_rounded_to_nearest_even()
    {
        using var f32 = Bundled(DType.F32);
        using var bf16 = Bundled(DType.BF16);
        int[] tokens = f32.Tokenizer.Encode("Once upon a time, there was a little dog", addBos: true);
        using var wide = f32.Transformer.NewState(tokens.Length);
        using var narrow = bf16.Transformer.NewState(tokens.Length);
        Assert.Equal(DType.BF16, narrow.KvCacheType);
        Assert.Equal(wide.KvCacheBytes, 2 * narrow.KvCacheBytes);
        f32.Transformer.Forward(tokens, 0, wide);
        bf16.Transformer.Forward(tokens, 0, narrow);

        foreach (var (expected, actual) in new[] { (wide.Keys[0], narrow.Keys[0]), (wide.Values[0], narrow.Values[0]) })
        {
            var rows = expected.View().Slice(0, tokens.Length);
            var rounded = new ushort[rows.ElementCount];
            DTypeConversion.FromSingle(rows.AsSpan<float>(), DType.BF16, rounded);
            Assert.Equal(rounded, actual.View().Slice(0, tokens.Length).AsSpan<ushort>().ToArray());
            Assert.Contains(rounded, bits => bits != 0);
        }
    }

    /// <summary>Perplexity with the cache in BF16 stays within 0.5% of the F32 cache's (measured: see docs/gpu.md, KV cache).</summary>
    [Fact]
    public void Perplexity_with_a_bf16_cache_stays_near_the_f32_cache()
    {
        using var f32 = Bundled(DType.F32);
        using var bf16 = Bundled(DType.BF16);
        string text = string.Join("\n", File.ReadLines(Fixtures.Get("text", "tinystories-valid.txt")).Take(40));
        int[] tokens = f32.Tokenizer.Encode(text, addBos: true);
        var wide = Perplexity.Evaluate(f32, tokens, 128, cancellationToken: TestContext.Current.CancellationToken);
        var narrow = Perplexity.Evaluate(bf16, tokens, 128, cancellationToken: TestContext.Current.CancellationToken);
        Assert.NotEqual(wide.Perplexity, narrow.Perplexity);
        Assert.Equal(wide.Perplexity, narrow.Perplexity, 0.005 * wide.Perplexity);
    }

    [Fact]
    public void Unset_the_cache_type_is_the_backends_preference()
    {
        using var model = LanguageModel.Load(Path.Combine(AppContext.BaseDirectory, "bundled-model"), new ModelLoadOptions { Threads = 1 });
        Assert.Equal(DType.F32, model.Backend.PreferredKvCacheType);
        Assert.Equal(DType.F32, model.Transformer.KvCacheType);
        using var state = model.Transformer.NewState(1);
        Assert.Equal(DType.F32, state.KvCacheType);
    }

    [Fact]
    public void Other_cache_types_are_refused()
    {
        using var model = Bundled(DType.F32);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new DecodeState(model.Config, 16, 1, kvCacheType: DType.F16));
        Assert.Contains("F32 or BF16", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Transformer(model.Config, model.Weights, model.Backend, 16, DType.F16));
    }
}
