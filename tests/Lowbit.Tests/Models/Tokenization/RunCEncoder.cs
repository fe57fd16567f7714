using System.Buffers.Binary;
using System.Text;

namespace Lowbit.Tests.Models.Tokenization;

/// <summary>
/// An independent port of llama2.c run.c's encode() (karpathy/llama2.c@350e04f), reading the .bin directly: BOS,
/// a dummy " " when the text is non-empty, each code point looked up (else its UTF-8 bytes + 3), then repeatedly
/// merge the adjacent pair whose concatenation is in the vocabulary with the highest score (leftmost on ties).
/// </summary>
internal sealed class RunCEncoder
{
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

    public RunCEncoder(string binPath, int vocabSize)
    {
        byte[] data = File.ReadAllBytes(binPath);
        _pieces = new string[vocabSize];
        _scores = new float[vocabSize];
        int position = 4;
        for (int i = 0; i < vocabSize; i++)
        {
            _scores[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(position));
            int length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(position + 4));
            _pieces[i] = Encoding.UTF8.GetString(data, position + 8, length);
            _ids.TryAdd(_pieces[i], i);
            position += 8 + length;
        }
    }

    public int[] Encode(string text)
    {
        var tokens = new List<int> { 1 };
        if (text.Length > 0)
            tokens.Add(_ids[" "]);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (Rune rune in text.EnumerateRunes())
        {
            if (_ids.TryGetValue(rune.ToString(), out int id))
            {
                tokens.Add(id);
                continue;
            }
            int n = rune.EncodeToUtf8(utf8);
            for (int i = 0; i < n; i++)
                tokens.Add(utf8[i] + 3);
        }
        while (true)
        {
            float bestScore = -1e10f;
            int bestId = -1, bestIndex = -1;
            for (int i = 0; i < tokens.Count - 1; i++)
            {
                if (_ids.TryGetValue(_pieces[tokens[i]] + _pieces[tokens[i + 1]], out int id) && _scores[id] > bestScore)
                    (bestScore, bestId, bestIndex) = (_scores[id], id, i);
            }
            if (bestIndex < 0)
                return [.. tokens];
            tokens[bestIndex] = bestId;
            tokens.RemoveAt(bestIndex + 1);
        }
    }
}
