using System.Text.Json;
using Lowbit.Backends.Cpu;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Models.HuggingFace;

namespace Lowbit.Tests.Models;

/// <summary>
/// Lowbit's forward pass against transformers on tiny random checkpoints (tests/fixtures/hf, made by
/// make_reference_fixtures.py): logits of a fixed sequence, and the greedy continuation.
/// </summary>
public sealed class HuggingFaceReferenceTests
{
    public static TheoryData<string> Checkpoints => new()
    {
        "llama-gqa-llama3rope-bf16-sharded",
        "mistral-headdim-f32",
        "qwen2-bias-tied-bf16",
    };

    private sealed record Reference(int[] input_ids, float[][] logits, int[] greedy_ids);

    private static (ModelConfig, CheckpointTensors, ModelWeights, Reference) Open(string name)
    {
        string dir = Fixtures.Get("hf", name);
        var reference = JsonSerializer.Deserialize<Reference>(File.ReadAllText(Path.Combine(dir, "reference.json")))!;
        var config = ModelConfigReader.Load(dir);
        var checkpoint = new CheckpointTensors(dir);
        return (config, checkpoint, ModelLoader.LoadWeights(checkpoint, config), reference);
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Prefill_logits_match_transformers(string name)
    {
        var (config, checkpoint, weights, reference) = Open(name);
        using var _ = checkpoint;
        using var backend = new CpuBackend(2);
        using var transformer = new Transformer(config, weights, backend, 64);
        int t = reference.input_ids.Length;
        using var state = new DecodeState(config, 64, t);
        transformer.Forward(reference.input_ids, 0, state, logitRows: t);

        // Both sides accumulate in F32 from the same (bf16-exact) weights, in different orders; the
        // differences measured are under 2e-6 of the logit range. 1e-5 of the range leaves room for
        // other summation orders (thread counts, SIMD widths) and is far below what any real mistake
        // (a rope convention, a missing bias, a wrong GQA head) produces.
        for (int row = 0; row < t; row++)
        {
            var expected = reference.logits[row];
            var actual = state.Logits.Row<float>(row);
            float range = expected.Max() - expected.Min();
            for (int v = 0; v < expected.Length; v++)
                Assert.True(Math.Abs(actual[v] - expected[v]) <= 1e-5f * range,
                    $"{name}: logit [{row}, {v}] = {actual[v]}, transformers {expected[v]} (range {range})");
        }
    }

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Greedy_continuation_matches_transformers(string name)
    {
        var (config, checkpoint, weights, reference) = Open(name);
        using var _ = checkpoint;
        using var backend = new CpuBackend(2);
        using var transformer = new Transformer(config, weights, backend, 64);
        using var state = new DecodeState(config, 64, 4);
        // Prefill in chunks of 4 (exercises several GEMM calls), then decode token by token.
        int[] ids = reference.input_ids;
        for (int start = 0; start < ids.Length; start += 4)
            transformer.Forward(ids.AsSpan(start, Math.Min(4, ids.Length - start)), start, state);
        var generated = new List<int>();
        int pos = ids.Length;
        for (int i = 0; i < reference.greedy_ids.Length; i++)
        {
            int next = Sampler.ArgMax(state.Logits.Row<float>(0));
            generated.Add(next);
            transformer.Forward([next], pos++, state);
        }
        Assert.Equal(reference.greedy_ids, generated.ToArray());
    }
}
