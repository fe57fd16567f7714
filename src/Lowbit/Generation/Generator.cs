using System.Diagnostics;
using System.Runtime.CompilerServices;
using Lowbit.Models;
using Lowbit.Models.Tokenization;

namespace Lowbit.Generation;

/// <summary>What one generation run may be told.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate (the prompt not counted).</summary>
    public int MaxTokens { get; init; } = 256;

    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;

    /// <summary>Stop when the model emits one of the tokenizer's end-of-sequence ids.</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Add the tokenizer's BOS id in front of the prompt (when it has one).</summary>
    public bool AddBos { get; init; } = true;
}

/// <summary>Counters of the last run: what `lowbit generate` prints in its summary line.</summary>
public sealed record GenerationStats(int PromptTokens, TimeSpan PrefillTime, int GeneratedTokens, TimeSpan DecodeTime)
{
    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillTime.TotalSeconds, 1e-9);

    /// <summary>Decode speed, counting the tokens that needed a forward pass of their own (all but
    /// the first, which came from the prefill's logits).</summary>
    public double DecodeTokensPerSecond => Math.Max(GeneratedTokens - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>
/// Prefill (the whole prompt in chunks of <see cref="PrefillChunk"/> tokens, batched GEMMs), then the
/// decode loop with the KV cache, as gpt-fast's generate(). Owns the run state of one sequence.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly LanguageModel _model;
    private readonly DecodeState _state;

    public Generator(LanguageModel model, int prefillChunk = 64)
    {
        _model = model;
        PrefillChunk = prefillChunk;
        _state = model.Transformer.NewState(prefillChunk);
    }

    public int PrefillChunk { get; }

    public GenerationStats? LastStats { get; private set; }

    /// <summary>Generates token ids after <paramref name="prompt"/> (which must not be empty).</summary>
    public IEnumerable<int> GenerateTokens(IReadOnlyList<int> prompt, GenerationOptions options)
    {
        if (prompt.Count == 0)
            throw new ArgumentException("The prompt has no tokens; give at least the BOS token.", nameof(prompt));
        int maxSeq = _model.Transformer.MaxSequenceLength;
        if (prompt.Count >= maxSeq)
            throw new ArgumentException($"The prompt has {prompt.Count} tokens; the context holds {maxSeq}.", nameof(prompt));
        return Run(prompt, options);
    }

    private IEnumerable<int> Run(IReadOnlyList<int> prompt, GenerationOptions options)
    {
        var transformer = _model.Transformer;
        var sampler = new Sampler(_model.Config.VocabSize, options.Sampling);
        int[] eos = [.. _model.Tokenizer.EosIds];
        int maxTokens = Math.Min(options.MaxTokens, transformer.MaxSequenceLength - prompt.Count);

        var clock = Stopwatch.StartNew();
        int[] tokens = [.. prompt];
        for (int start = 0; start < tokens.Length; start += PrefillChunk)
        {
            int count = Math.Min(PrefillChunk, tokens.Length - start);
            transformer.Forward(tokens.AsSpan(start, count), start, _state);
        }
        var prefillTime = clock.Elapsed;
        clock.Restart();

        int pos = tokens.Length, generated = 0;
        try
        {
            while (generated < maxTokens)
            {
                // On a device the token is chosen there: one int comes back, not the logits.
                int next = _model.Backend.UsesHostMemory
                    ? sampler.Sample(_state.LogitsRow(0))
                    : sampler.Sample(_model.Backend, _state.Logits.Slice(0, 1));
                generated++;
                if (options.StopAtEos && eos.AsSpan().Contains(next))
                    yield break;
                yield return next;
                if (generated == maxTokens)
                    break;
                transformer.Decode(next, pos++, _state);
            }
        }
        finally
        {
            // Set once, when the caller is done (a stats record per token would allocate in the loop).
            LastStats = new GenerationStats(tokens.Length, prefillTime, generated, clock.Elapsed);
        }
    }

    /// <summary>Streams the text of the continuation of <paramref name="prompt"/> piece by piece.</summary>
    public async IAsyncEnumerable<string> GenerateAsync(string prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        var tokenizer = _model.Tokenizer;
        int[] ids = tokenizer.Encode(prompt, options.AddBos && tokenizer.BosId is not null);
        // The prompt's ids go through the decoder first, so the continuation keeps its leading space.
        var decoder = new TokenStreamDecoder(tokenizer);
        foreach (int id in ids)
            decoder.Push(id);
        foreach (int id in GenerateTokens(ids, options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            string piece = decoder.Push(id);
            if (piece.Length > 0)
                yield return piece;
            await Task.CompletedTask;
        }
        string rest = decoder.Flush();
        if (rest.Length > 0)
            yield return rest;
    }

    public void Dispose() => _state.Dispose();
}
