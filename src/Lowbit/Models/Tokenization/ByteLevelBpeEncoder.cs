using Microsoft.ML.Tokenizers;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// Byte-level BPE encoding as Hugging Face tokenizers does it: normalize, pre-tokenize (added tokens first, see
/// <see cref="HuggingFacePreTokenizer"/>), then each piece becomes its added-token id, or — with model.ignore_merges,
/// which Llama 3 sets — its vocabulary id when the whole piece is a token, or else the merges of
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (which has no ignore_merges of its own).
/// </summary>
internal sealed class ByteLevelBpeEncoder(
    BpeTokenizer bpe,
    Normalizer? normalizer,
    HuggingFacePreTokenizer preTokenizer,
    IReadOnlyDictionary<string, int> vocabulary,
    IReadOnlyDictionary<string, int> addedTokens,
    bool ignoreMerges)
{
    public void Encode(string text, List<int> ids)
    {
        string normalized = normalizer?.Normalize(text) ?? text;
        foreach ((int offset, int length) in preTokenizer.PreTokenize(normalized))
        {
            string piece = normalized.Substring(offset, length);
            if (addedTokens.TryGetValue(piece, out int id)
                || (ignoreMerges && vocabulary.TryGetValue(ByteLevelAlphabet.ToTokenString(piece), out id)))
            {
                ids.Add(id);
                continue;
            }
            ids.AddRange(bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
        }
    }
}
